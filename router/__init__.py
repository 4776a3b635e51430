"""ggroute.router."""
