"""`python -m ggroute.cli` runs the ggroute command line."""

from ggroute.cli.app import main

main()
