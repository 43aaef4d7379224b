"""Entry point of the single-file executable built by scripts/build-binary (PyInstaller).

It is the `tasks` client too: run as `tasks-server client ARGS`, or through a link named
`tasks`, so one file carries the server and the client.
"""

import multiprocessing
import sys
from pathlib import Path

from tasks_server.cli import main
from tasks_server.client.cli import app as client

if __name__ == "__main__":
    # Cluster mode starts its workers with multiprocessing's "spawn": each one re-runs this
    # executable with --multiprocessing-fork, which freeze_support() turns into the worker
    # before the command line is parsed.
    multiprocessing.freeze_support()
    if Path(sys.argv[0]).name == "tasks":
        client(prog_name="tasks")
    elif sys.argv[1:2] == ["client"]:
        client(args=sys.argv[2:], prog_name="tasks-server client")
    else:
        main()
