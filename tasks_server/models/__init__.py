"""Pydantic models: the one definition of valid input, of responses, and of /openapi.json."""
