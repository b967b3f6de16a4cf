"""LoRA adapters on the llama.cpp context.

llama.cpp applies adapters to a whole context, so each `llama_decode` call runs under one adapter set: the
batcher groups sequences by adapter and makes one call per group (as llama-server batches only slots with
equal LoRA settings). Loading happens on any thread (it reads the file into buffers of its own); switching and
freeing happen on the batcher thread, between calls. An unloaded adapter is freed once no sequence uses it.
"""

from __future__ import annotations

import ctypes
import logging
import threading

import llama_cpp

from parley.engines.base import AdapterRef
from parley.engines.llamacpp.gguf_model import GGUFModel

log = logging.getLogger(__name__)

_NOT_SET = AdapterRef("\0unset")  # what the context holds before the first call


class ContextAdapters:
    def __init__(self, model: GGUFModel) -> None:
        self.model = model
        self._loaded: dict[AdapterRef, llama_cpp.llama_adapter_lora_p] = {}
        self._retired: dict[AdapterRef, llama_cpp.llama_adapter_lora_p] = {}
        self._lock = threading.Lock()
        self._current: AdapterRef | None = _NOT_SET
        self.switches = 0

    # ---- any thread ---------------------------------------------------------------------------------

    def load(self, ref: AdapterRef, path: str) -> None:
        ptr = llama_cpp.llama_adapter_lora_init(self.model.ptr, path.encode())
        if not ptr:
            raise ValueError(f"llama.cpp could not load {path} as a LoRA adapter of this model")
        with self._lock:
            old = self._loaded.pop(ref, None)
            self._loaded[ref] = ptr
            if old is not None:
                self._retired[AdapterRef(f"\0replaced:{id(old)}")] = old
        log.info("adapter %s loaded (%s)", ref.name, path)

    def unload(self, ref: AdapterRef) -> None:
        with self._lock:
            ptr = self._loaded.pop(ref, None)
            if ptr is not None:
                self._retired[ref] = ptr

    def has(self, ref: AdapterRef) -> bool:
        with self._lock:
            return ref in self._loaded

    def names(self) -> list[str]:
        with self._lock:
            return sorted(r.name for r in self._loaded)

    # ---- the batcher thread ---------------------------------------------------------------------------

    def apply(self, ctx: llama_cpp.llama_context_p, ref: AdapterRef | None) -> None:
        """Put `ref` (None: the base model) on the context for the next call."""
        if ref == self._current:
            return
        with self._lock:
            ptr = None if ref is None else self._loaded.get(ref) or self._retired.get(ref)
        if ref is not None and ptr is None:
            raise RuntimeError(f"adapter {ref.name} is not loaded")
        if ptr is None:
            rc = llama_cpp.llama_set_adapters_lora(ctx, None, 0, None)
        else:
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(ptr)
            scales = (ctypes.c_float * 1)(ref.scale if ref is not None else 1.0)
            rc = llama_cpp.llama_set_adapters_lora(ctx, adapters, 1, scales)
        if rc != 0:
            raise RuntimeError(f"llama_set_adapters_lora returned {rc}")
        self._current = ref
        self.switches += 1

    def sweep(self, ctx: llama_cpp.llama_context_p, in_use: set[AdapterRef | None]) -> list[AdapterRef]:
        """Free retired adapters no sequence uses any more; returns them (their cached prefixes are void)."""
        with self._lock:
            done = [ref for ref in self._retired if ref not in in_use]
        freed = []
        for ref in done:
            if self._current == ref:
                self.apply(ctx, None)
            with self._lock:
                ptr = self._retired.pop(ref)
            llama_cpp.llama_adapter_lora_free(ptr)
            freed.append(ref)
        return freed

    def close(self) -> None:
        with self._lock:
            for ptr in [*self._loaded.values(), *self._retired.values()]:
                llama_cpp.llama_adapter_lora_free(ptr)
            self._loaded.clear()
            self._retired.clear()
