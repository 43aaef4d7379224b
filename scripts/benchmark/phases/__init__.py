"""One module per measurement. Each SPEC §8/§14 phase has ``run(profile, procs, work,
report)``, adding its rows to the report; those that ``--postgres`` runs on every
configuration also have ``on_nodes`` (one configuration's figures) and ``nodes_rows``."""
