"""api-router: an authenticated HTTP gateway for LLM inference."""

__version__ = "0.1.0"
