"""One llama.cpp sampler chain per sequence, built from the request's `SamplingParams`."""

from __future__ import annotations

import ctypes
import random

import llama_cpp

from parley.engines.base import SamplingParams
from parley.engines.llamacpp.gguf_model import GGUFModel
from parley.errors import InvalidRequest

PENALTY_LAST_N = 64


def build_grammar(model: GGUFModel, grammar: str) -> llama_cpp.llama_sampler_p:
    """The grammar as a sampler of its own (`constrained.Candidates.sample` consults it); the caller frees it."""
    sampler = llama_cpp.llama_sampler_init_grammar(model.vocab, grammar.encode(), b"root")
    if not sampler:
        raise InvalidRequest("the output grammar could not be compiled", param="response_format")
    return sampler


def build_sampler(model: GGUFModel, params: SamplingParams, *, context: int) -> llama_cpp.llama_sampler_p:
    """Chain order follows llama.cpp's common sampler: biases and penalties, then truncation, then temperature
    and the final draw; a grammar is a sampler apart (`build_grammar`), consulted first as llama.cpp's common
    sampler does. The caller owns the chain and frees it with `llama_sampler_free`."""
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())

    def add(sampler: llama_cpp.llama_sampler_p) -> None:
        llama_cpp.llama_sampler_chain_add(chain, sampler)  # the chain takes ownership

    bias = dict(params.logit_bias)
    if params.ignore_eos:
        bias.update({t: float("-inf") for t in model.eog_tokens})
    if bias:
        biases = (llama_cpp.llama_logit_bias * len(bias))()
        for i, (token, value) in enumerate(bias.items()):
            biases[i].token, biases[i].bias = token, value
        add(llama_cpp.llama_sampler_init_logit_bias(model.n_vocab, len(bias), biases))
    if params.repetition_penalty != 1.0 or params.frequency_penalty or params.presence_penalty:
        add(
            llama_cpp.llama_sampler_init_penalties(
                model.n_vocab,
                PENALTY_LAST_N,
                params.repetition_penalty,
                params.frequency_penalty,
                params.presence_penalty,
            )
        )
    if params.dry_multiplier > 0.0:
        # This llama.cpp treats a negative window as "off"; -1 means the whole context, as in llama-server.
        last_n = context if params.dry_penalty_last_n < 0 else params.dry_penalty_last_n
        breakers = [b"\n", b":", b'"', b"*"]
        arr = (ctypes.c_char_p * len(breakers))(*breakers)
        add(
            llama_cpp.llama_sampler_init_dry(
                model.vocab, params.dry_multiplier, params.dry_base, params.dry_allowed_length,
                last_n, arr, len(breakers),
            )
        )  # fmt: skip
    if params.temperature <= 0.0:
        add(llama_cpp.llama_sampler_init_greedy())
        return chain
    if params.top_k > 0:
        add(llama_cpp.llama_sampler_init_top_k(params.top_k))
    if params.top_p < 1.0:
        add(llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
    if params.min_p > 0.0:
        add(llama_cpp.llama_sampler_init_min_p(params.min_p, 1))
    add(llama_cpp.llama_sampler_init_temp(params.temperature))
    seed = params.seed if params.seed is not None else random.getrandbits(32)
    add(llama_cpp.llama_sampler_init_dist(seed & 0xFFFFFFFF))
    return chain
