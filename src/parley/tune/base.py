"""The base model in PyTorch, read from the GGUF file llama.cpp serves (transformers reads GGUF; nothing is
downloaded). transformers marks a model read from GGUF as quantised, which TRL refuses, so the weights go into
a plain `LlamaForCausalLM` once and that is cached beside the data (a second load takes a fraction of a second).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


def cache_dir_for(gguf: Path, cache_root: Path) -> Path:
    stat = gguf.stat()
    tag = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{int(stat.st_mtime)}".encode()).hexdigest()[:12]
    return cache_root / f"{gguf.stem}-{tag}"


def load_base(gguf: Path, cache_root: Path) -> tuple[Any, Any]:
    """(model, tokenizer) in float32 on the CPU, from the GGUF file (cached as a plain checkpoint)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cached = cache_dir_for(gguf, cache_root)
    if not (cached / "config.json").exists():
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        read = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        config = read.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        plain = type(read)(config)
        plain.load_state_dict(read.state_dict())
        tmp = cached.with_name(cached.name + ".tmp")
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.rename(cached)
        del read, plain
    model = AutoModelForCausalLM.from_pretrained(str(cached), dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(cached))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
