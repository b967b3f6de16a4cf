"""A PEFT LoRA adapter written as a llama.cpp GGUF LoRA adapter, for a Llama-family base model.

llama.cpp's converter permutes the rows of the query and key projections of Llama-family models (its RoPE
kernel pairs dimensions differently from Hugging Face's); an adapter's `lora_b` for `q_proj` and `k_proj` is a
delta on those rows and needs the same permutation, or the adapter's effect is scrambled.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

# Hugging Face module → llama.cpp tensor, for the projections a LoRA usually targets.
MODULES = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}  # fmt: skip
NAME = re.compile(r"layers\.(\d+)\.(self_attn\.\w+|mlp\.\w+)\.lora_([AB])\.weight$")


def permute_rows(weights: np.ndarray, n_head: int, n_head_kv: int | None = None) -> np.ndarray:
    """The row order llama.cpp's converter gives Llama's q/k projections (`LlamaModel.permute`)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    rows = weights.shape[0]
    return weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def lora_tensors(state: dict[str, Any], n_head: int, n_head_kv: int) -> dict[str, np.ndarray]:
    """llama.cpp tensor name → array (`blk.N.attn_q.weight.lora_a` (r, in), `.lora_b` (out, r))."""
    out: dict[str, np.ndarray] = {}
    for name, tensor in state.items():
        m = NAME.search(name)
        if m is None:
            raise ValueError(f"unexpected tensor in the adapter: {name}")
        layer, module, which = m.groups()
        if module not in MODULES:
            raise ValueError(f"llama.cpp has no tensor for {module} (in {name})")
        array = tensor.detach().float().cpu().numpy() if hasattr(tensor, "detach") else np.asarray(tensor, np.float32)
        if which == "B" and module == "self_attn.q_proj":
            array = permute_rows(array, n_head, n_head)
        elif which == "B" and module == "self_attn.k_proj":
            array = permute_rows(array, n_head, n_head_kv)
        out[f"blk.{layer}.{MODULES[module]}.weight.lora_{which.lower()}"] = np.ascontiguousarray(array)
    return out


def write_gguf_lora(path: Path, state: dict[str, Any], *, alpha: float, n_head: int, n_head_kv: int,
                    architecture: str = "llama", name: str = "") -> Path:  # fmt: skip
    import gguf

    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    if name:
        writer.add_name(name)
    for tensor_name, array in sorted(lora_tensors(state, n_head, n_head_kv).items()):
        writer.add_tensor(tensor_name, array.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def random_lora_state(
    *, n_layer: int, n_embd: int, n_head: int, n_head_kv: int, rank: int = 8, std: float = 0.05, seed: int = 0
) -> dict[str, np.ndarray]:
    """A PEFT-named LoRA on q/k/v/o with random weights: it changes a model's answers without training, for
    tests of serving and for benchmarks (the cost of an adapter does not depend on its values)."""
    rng = np.random.default_rng(seed)
    head_dim = n_embd // n_head
    outs = {"q_proj": n_embd, "k_proj": n_head_kv * head_dim, "v_proj": n_head_kv * head_dim, "o_proj": n_embd}
    state = {}
    for layer in range(n_layer):
        for module, out in outs.items():
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            state[f"{prefix}.lora_A.weight"] = rng.normal(0, std, (rank, n_embd)).astype(np.float32)
            state[f"{prefix}.lora_B.weight"] = rng.normal(0, std, (out, rank)).astype(np.float32)
    return state
