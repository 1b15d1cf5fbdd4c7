"""``python -m drtool.lab.flux``: the simulated flux CLI."""
import sys

from drtool.lab.flux.cli import main

sys.exit(main(sys.argv[1:]))
