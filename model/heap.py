"""The one owner of ``gc.freeze``: what is alive once a server or an engine has started lives as
long as it does, and a full collection walking it would stall every stream.

Both the server (at start-up) and the engine (after warm-up) hold the heap frozen; it thaws when
the last of them lets go, so an engine stopping inside a running server leaves it frozen.
"""

from __future__ import annotations

import gc
import threading

_lock = threading.Lock()
_holders = 0


def hold() -> None:
    """Collect, then freeze what survives (no garbage is frozen with it)."""
    global _holders
    with _lock:
        _holders += 1
        gc.collect()
        gc.freeze()


def release() -> None:
    global _holders
    with _lock:
        _holders = max(0, _holders - 1)
        if _holders == 0:
            gc.unfreeze()
