"""The llama.cpp backend: the only package that imports llama_cpp (see models/backend.py for the contract)."""
