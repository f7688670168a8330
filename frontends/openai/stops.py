"""Stop sequences: the reply is cut where one first appears, and none of it is ever sent.

The engine streams text in chunks that may split a stop sequence (``"Ros"`` then ``"s:"``), so
the watcher holds back the last ``len(longest stop) - 1`` characters until it knows they do not
start one. The request that owns it cancels the reply at the first match, which frees its engine
slot before the next step.
"""

from __future__ import annotations


class StopWatch:
    def __init__(self, stops: tuple[str, ...]):
        self.stops = tuple(s for s in stops if s)
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.pending = ""  # text seen and not yet released
        self.hit = False

    def feed(self, text: str) -> str:
        """The text that may be sent now, after ``text`` came; sets ``hit`` at a stop sequence."""
        if self.hit:
            return ""
        self.pending += text
        cut = min((i for s in self.stops if (i := self.pending.find(s)) >= 0), default=-1)
        if cut >= 0:
            self.hit, released, self.pending = True, self.pending[:cut], ""
            return released
        keep = min(self.hold, len(self.pending))
        released, self.pending = self.pending[:len(self.pending) - keep], self.pending[len(self.pending) - keep:]
        return released

    def flush(self) -> str:
        """What was held back, once the reply has ended without a stop sequence."""
        released, self.pending = self.pending, ""
        return released
