"""Counting a conversation's tokens the way the served model will (its own template and tokenizer)."""

from __future__ import annotations

from pathlib import Path


class TokenCounter:
    def __init__(self, model: Path | None = None) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        from parley.engines.llamacpp.engine import CHATML_TEMPLATE, embedded_model_path
        from parley.engines.llamacpp.gguf_model import GGUFModel

        self.model = GGUFModel(Path(model) if model else embedded_model_path())
        self.format = Jinja2ChatFormatter(self.model.chat_template or CHATML_TEMPLATE, self.model.eos_text,
                                          self.model.bos_text)  # fmt: skip

    def count(self, messages: list[dict[str, str]]) -> int:
        text = self.format(messages=messages).prompt
        return len(self.model.tokenize(text, add_special=False, parse_special=True))

    def close(self) -> None:
        self.model.close()
