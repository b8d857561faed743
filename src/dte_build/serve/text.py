"""Turning a stream of token pieces (bytes) into the text a client sees: UTF-8 decoded incrementally (a character
split across tokens is held until complete) and cut at the first stop sequence (text that could still become one is
held back, so a stop string is never half-sent)."""

from __future__ import annotations

import codecs


class StopText:
    """Feed token pieces; get the text that is safe to send, and whether a stop sequence was reached."""

    def __init__(self, stops: tuple[str, ...] = ()) -> None:
        self.stops = stops
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._held = ""
        self.stopped = False
        self.text = ""      # everything released so far

    def feed(self, piece: bytes) -> str:
        """The newly releasable text after `piece` ("" when held back or already stopped)."""
        if self.stopped:
            return ""
        return self._release(self._held + self._decoder.decode(piece))

    def finish(self) -> str:
        """The rest at the end of the generation (held text that never became a stop sequence)."""
        if self.stopped:
            return ""
        return self._release(self._held + self._decoder.decode(b"", final=True), final=True)

    def _release(self, pending: str, final: bool = False) -> str:
        cut = min((i for i in (pending.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._held = ""
            out = pending[:cut]
        else:
            keep = 0 if final else self._partial_stop(pending)
            out, self._held = pending[:len(pending) - keep], pending[len(pending) - keep:]
        self.text += out
        return out

    def _partial_stop(self, text: str) -> int:
        """Length of the longest end of `text` that is the start of some stop sequence."""
        best = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:n]):
                    best = n
                    break
        return best
