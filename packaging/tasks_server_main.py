"""Entry point of the single-file executable built by scripts/build-binary (PyInstaller)."""

import multiprocessing

from tasks_server.cli import main

if __name__ == "__main__":
    # Cluster mode starts its workers with multiprocessing's "spawn": each one re-runs this
    # executable with --multiprocessing-fork, which freeze_support() turns into the worker
    # before the command line is parsed.
    multiprocessing.freeze_support()
    main()
