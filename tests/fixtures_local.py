"""Fixtures for the built-in local server (filled in by the local server work)."""
