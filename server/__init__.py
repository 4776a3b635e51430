"""`ggroute serve`: the OpenAI-compatible HTTP face (docs/server.md). Importing it starts nothing."""
