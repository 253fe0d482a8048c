"""The HTTP adapter (FastAPI)."""
