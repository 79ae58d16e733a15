"""Hardware-aware model optimisation: Puzzle (arXiv 2411.19146) and FFN Fusion (arXiv 2503.18908)."""
