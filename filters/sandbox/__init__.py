"""Sandboxed execution of untrusted Python: one jailed run (`core`) and test harnesses (`tests`).

See docs/sandbox.md for the isolation mechanism and its limits.
"""

from filters.sandbox.core import DEFAULT_LIMITS, Limits, RunResult, SandboxError, run_python

__all__ = ["DEFAULT_LIMITS", "Limits", "RunResult", "SandboxError", "run_python"]
