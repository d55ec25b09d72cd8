"""The package's version: the one source (pyproject.toml reads it; so does the user agent)."""

__version__ = "0.1.0"
