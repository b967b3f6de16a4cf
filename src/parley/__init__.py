"""Parley: a self-hosted, OpenAI-compatible chat service built as six explicit stages."""

__version__ = "0.1.0"
