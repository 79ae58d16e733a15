"""thinkmix's core engine: records, recipes, stages, runner, store, stats and the CLI."""

__version__ = "0.2.0"  # 0.2: the streaming engine (row groups, rejected-row order)
