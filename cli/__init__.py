"""ggroute.cli."""
