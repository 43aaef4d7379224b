"""``tasks``: the command-line client of a tasks-server (SPEC §13.3)."""
