"""LoRA fine-tuning on the CPU with TRL and PEFT (SFT, DPO or KTO), written as a PEFT adapter (what vLLM
serves with `--enable-lora`) and as a llama.cpp GGUF LoRA adapter (what Parley's embedded engine serves)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from parley.tune.base import load_base
from parley.tune.gguf_lora import write_gguf_lora

# LoRA targets: the attention projections, or every linear layer (better at taking in new facts, for SFT).
TARGETS = {
    "attention": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "all": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}


@dataclass
class TuneConfig:
    method: str  # sft | dpo | kto
    rank: int = 8
    alpha: int = 16
    targets: str = "attention"  # or "all"
    learning_rate: float = 5e-4
    epochs: float = 1.0
    max_steps: int = -1  # > 0: stop after this many steps whatever the epochs
    batch_size: int = 4
    max_length: int = 512
    beta: float = 0.1  # DPO and KTO
    seed: int = 0
    threads: int = 2

    def public(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TuneResult:
    steps: int
    losses: list[float]
    seconds: float
    peft_dir: Path
    gguf_path: Path
    metrics: dict[str, float] = field(default_factory=dict)


def train(
    examples: list[dict[str, Any]], cfg: TuneConfig, gguf: Path, out_dir: Path, *, cache_root: Path, name: str,
    on_log: Callable[[int, dict[str, float]], None] | None = None,
) -> TuneResult:  # fmt: skip
    """Train a LoRA on `examples` (TRL's conversational format for `cfg.method`) over the GGUF base."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    start = time.perf_counter()
    model, tokenizer = load_base(gguf, cache_root)
    losses: list[float] = []

    class Losses(TrainerCallback):  # type: ignore[misc]
        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kw: Any) -> None:
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))
                if on_log is not None:
                    on_log(state.global_step, logs)

    common = {
        "output_dir": str(out_dir / "trainer"), "per_device_train_batch_size": cfg.batch_size,
        "num_train_epochs": cfg.epochs, "max_steps": cfg.max_steps, "learning_rate": cfg.learning_rate,
        "logging_steps": 1, "save_strategy": "no", "report_to": "none", "use_cpu": True, "seed": cfg.seed,
        "bf16": False, "fp16": False, "max_length": cfg.max_length, "dataloader_num_workers": 0,
    }  # fmt: skip
    lora = LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, target_modules=TARGETS[cfg.targets], lora_dropout=0.0,
                      task_type="CAUSAL_LM")  # fmt: skip
    trainer_class, config = _trainer(cfg, common)
    if cfg.method == "sft":  # the loss on the answer only: TRL's prompt-completion form
        examples = [{"prompt": e["messages"][:-1], "completion": e["messages"][-1:]} for e in examples]
    trainer = trainer_class(model=model, args=config, train_dataset=Dataset.from_list(examples),
                            processing_class=tokenizer, peft_config=lora, callbacks=[Losses()])  # fmt: skip
    result = trainer.train()
    peft_dir = out_dir / "peft"
    trainer.model.save_pretrained(str(peft_dir))
    tokenizer.save_pretrained(str(peft_dir))
    gguf_path = export_gguf(peft_dir, out_dir / f"{name}.gguf", name=name)
    metrics = {k: float(v) for k, v in result.metrics.items() if isinstance(v, int | float)}
    return TuneResult(trainer.state.global_step, losses, time.perf_counter() - start, peft_dir, gguf_path, metrics)


def _trainer(cfg: TuneConfig, common: dict[str, Any]) -> tuple[Any, Any]:
    if cfg.method == "sft":
        from trl import SFTConfig, SFTTrainer

        return SFTTrainer, SFTConfig(**common, completion_only_loss=True)
    if cfg.method == "dpo":
        from trl import DPOConfig, DPOTrainer

        return DPOTrainer, DPOConfig(**common, beta=cfg.beta)
    if cfg.method == "kto":
        from trl import KTOConfig, KTOTrainer

        return KTOTrainer, KTOConfig(**common, beta=cfg.beta)
    raise ValueError(f"unknown method {cfg.method!r}: use sft, dpo or kto")


def export_gguf(peft_dir: Path, out: Path, *, name: str = "") -> Path:
    """The PEFT adapter in `peft_dir` as a llama.cpp GGUF LoRA adapter."""
    import json

    from safetensors.numpy import load_file

    config = json.loads((peft_dir / "adapter_config.json").read_text())
    base_config = _base_config(peft_dir, config)
    state = load_file(str(peft_dir / "adapter_model.safetensors"))
    return write_gguf_lora(out, state, alpha=float(config["lora_alpha"]), n_head=base_config["num_attention_heads"],
                           n_head_kv=base_config["num_key_value_heads"], name=name)  # fmt: skip


def _base_config(peft_dir: Path, adapter_config: dict[str, Any]) -> dict[str, Any]:
    import json

    base = Path(adapter_config.get("base_model_name_or_path") or "")
    for candidate in (base / "config.json", peft_dir / "config.json"):
        if candidate.is_file():
            return dict(json.loads(candidate.read_text()))
    raise FileNotFoundError(f"the base model's config.json (looked in {base})")
