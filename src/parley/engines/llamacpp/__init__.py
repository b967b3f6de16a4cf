"""The embedded engine: llama.cpp through llama-cpp-python's low-level API, with continuous batching."""

from parley.engines.llamacpp.engine import LlamaCppEngine, embedded_model_path

__all__ = ["LlamaCppEngine", "embedded_model_path"]
