"""Child processes (QEMU, swtpm) that never outlive the dte process that started them.

Three paths end a `dte run`: it returns or raises (run_config's `finally` kills QEMU's process group), it gets
SIGTERM/SIGHUP/SIGINT (`signals_as_interrupt` turns them into KeyboardInterrupt, so the same `finally` runs), or it
is killed outright (SIGKILL, OOM): then nothing of dte runs any more, so the kernel does it — each child asks, between
fork and exec, for SIGKILL when its parent thread ends (prctl PR_SET_PDEATHSIG, Linux prctl(2)).
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

PR_SET_PDEATHSIG = 1        # <linux/prctl.h>
SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def _set_pdeathsig(parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:      # the parent died between fork and prctl: nobody would kill us later
        os._exit(1)


def die_with_parent() -> Callable[[], None]:
    """A subprocess.Popen `preexec_fn`: the child gets SIGKILL when the thread that started it ends.

    The signal follows the *thread* that forked (prctl(2)): start the child from a thread that lives as long as the
    child should (run_config waits for QEMU in the thread that started it)."""
    return functools.partial(_set_pdeathsig, os.getpid())


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """SIGTERM, SIGHUP and SIGINT raise KeyboardInterrupt in the main thread while the block runs, so `finally`
    clauses stop children as on Ctrl-C. A no-op outside the main thread (signal handlers live there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _interrupt) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
