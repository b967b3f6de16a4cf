"""Cutting a text into random stream pieces, as a model's tokens would arrive."""

from __future__ import annotations

import random


def random_pieces(text: str, seed: int, longest: int = 6) -> list[str]:
    rng = random.Random(seed)
    pieces, i = [], 0
    while i < len(text):
        n = rng.randint(1, longest)
        pieces.append(text[i : i + n])
        i += n
    return pieces
