"""thinkmix's core engine: records, recipes, stages, runner, store, stats and the CLI."""

__version__ = "0.1.0"
