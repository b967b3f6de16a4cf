"""Fine-tuning from feedback: datasets, LoRA training with TRL and PEFT, export to llama.cpp, evaluation.

Everything but `gguf_lora` needs the `tune` extra (transformers, peft, trl): `pip install 'parley[tune]'`.
"""
