"""ggroute.models."""
