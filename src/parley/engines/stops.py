"""Stop-sequence matching over a text stream, holding back only what could still become a stop sequence."""

from __future__ import annotations


class StopMatcher:
    """Feed text pieces; get back the text safe to emit and whether a stop sequence was reached.

    The stop sequence itself is never emitted (OpenAI semantics).
    """

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self._buf = ""

    def feed(self, text: str) -> tuple[str, bool]:
        if not self.stops:
            return text, False
        self._buf += text
        first = min(((self._buf.find(s), s) for s in self.stops if s in self._buf), default=None)
        if first is not None:
            out = self._buf[: first[0]]
            self._buf = ""
            return out, True
        keep = self._partial_suffix()
        out, self._buf = self._buf[: len(self._buf) - keep], self._buf[len(self._buf) - keep :]
        return out, False

    def flush(self) -> str:
        out, self._buf = self._buf, ""
        return out

    def _partial_suffix(self) -> int:
        """Length of the longest tail of the buffer that is a proper prefix of some stop sequence."""
        best = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(self._buf)), best, -1):
                if self._buf.endswith(stop[:n]):
                    best = n
                    break
        return best
