"""Pydantic models of the OpenAI wire format. No behaviour lives here."""
