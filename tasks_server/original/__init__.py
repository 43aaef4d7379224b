"""Arriving from the original Bun tasks-server (SPEC §19.1): reading its SQLite database
(either schema: owners until 1.0.0-beta.3, "tasks" from beta.4 on), opening its encrypted
configs, mapping its rows to ours, and importing them (`tasks-server import-original`)."""
