"""tasks-server: execute HTTP requests later, durably."""

__version__ = "0.1.0"
