import sys

from scripts.benchmark.cli import main

sys.exit(main(sys.argv[1:]))
