"""The remote backend: an OpenAI-compatible server (llama-server, vLLM, ...) as a model; the only package that
imports `openai` (see models/backend.py for the contract, docs/remote.md for the user's side)."""
