"""tamer: a cost-aware LLM gateway. This package holds the `tamer` command and the settings."""

__version__ = "0.1.0"
