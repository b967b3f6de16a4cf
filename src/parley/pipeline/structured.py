"""Structured input: a JSON object rendered into prompt text, deterministically (keys sorted)."""

from __future__ import annotations

import json
from typing import Any


def render_structured(obj: dict[str, Any]) -> str:
    """Render a JSON object as an indented `key: value` outline a small model reads well.

    JSON objects are unordered, so keys are sorted: equal objects always give the same prompt.
    """
    return "\n".join(_lines(obj, 0))


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _lines(value: Any, depth: int) -> list[str]:
    pad = "  " * depth
    out: list[str] = []
    if isinstance(value, dict):
        for key in sorted(value, key=str):
            item = value[key]
            if isinstance(item, dict | list) and item:
                out.append(f"{pad}{key}:")
                out.extend(_lines(item, depth + 1))
            elif isinstance(item, str) and "\n" in item:
                out.append(f"{pad}{key}: |")
                out.extend(f"{pad}  {line}" for line in item.split("\n"))
            else:
                out.append(f"{pad}{key}: {_scalar(item) if item != {} and item != [] else json.dumps(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list) and item:
                sub = _lines(item, depth + 1)
                out.append(f"{pad}- {sub[0].lstrip()}")
                out.extend(sub[1:])
            else:
                out.append(f"{pad}- {_scalar(item)}")
    else:
        out.append(f"{pad}{_scalar(value)}")
    return out


def parse_json_object(text: str) -> dict[str, Any] | None:
    """The object, when the whole text is one JSON object; otherwise None."""
    stripped = text.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")):
        return None
    try:
        value = json.loads(stripped)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
