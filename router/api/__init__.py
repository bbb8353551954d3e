"""The OpenAI-compatible HTTP proxy (FastAPI)."""
