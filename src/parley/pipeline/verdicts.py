"""What the guards decided for a turn, read from the notes its guard steps left: for the completion log, the
metrics and the traces, so all three agree."""

from __future__ import annotations

from typing import Any

from parley.pipeline.turn import Turn


def guard_summary(turn: Turn) -> dict[str, Any]:
    """The verdicts as the completion log stores them."""
    notes = turn.notes
    return {
        "input": notes.get("guard_input", {}).get("verdicts", []),
        "off_topic": notes.get("guard_input", {}).get("off_topic"),
        "output": notes.get("output_guard", {}).get("findings", []),
        "blocked": notes.get("output_guard", {}).get("blocked"),
    }


def guard_actions(turn: Turn) -> list[tuple[str, str, str]]:
    """One (side, scanner, action) per finding: side `input` or `output`; an off-topic refusal is the
    `off_topic` scanner on the input side."""
    return actions_in(guard_summary(turn))


def actions_in(summary: dict[str, Any]) -> list[tuple[str, str, str]]:
    """`guard_actions` of a summary as `guard_summary` made it (also one read back from the log)."""
    out = [("input", str(f["scanner"]), str(f.get("action", v.get("action") or "flag")))  # older rows: per message
           for v in summary.get("input") or [] for f in v.get("findings", [])]  # fmt: skip
    if summary.get("off_topic"):
        out.append(("input", "off_topic", str(summary["off_topic"].get("action", "block"))))
    out += [("output", str(f["scanner"]), str(f.get("action", "flag"))) for f in summary.get("output") or []]
    return out
