"""A software TPM 2.0 for QEMU runs: swtpm (libtpms) on a UNIX control socket in the run's temporary directory,
started before QEMU and always stopped after it (QEMU's tpm-emulator backend talks to it; docs/identity.md)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .child import die_with_parent
from .errors import DteError

SWTPM = "swtpm"
START_TIMEOUT = 10.0


@contextmanager
def swtpm_socket(workdir: Path, enabled: bool = True) -> Iterator[Path | None]:
    """Run swtpm with fresh state under `workdir`; yields its control socket (None when not `enabled`)."""
    if not enabled:
        yield None
        return
    binary = shutil.which(SWTPM)
    if binary is None:
        raise DteError("swtpm not found (needed for --tpm)", "install it: apt-get install swtpm")
    state = workdir / "tpm-state"
    state.mkdir()
    sock = workdir / "swtpm.sock"
    proc = subprocess.Popen([binary, "socket", "--tpm2", "--tpmstate", f"dir={state}",
                             "--ctrl", f"type=unixio,path={sock}", "--terminate"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, preexec_fn=die_with_parent())
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not sock.exists():
            if proc.poll() is not None:
                detail = (proc.stderr.read().decode(errors="replace").strip().splitlines() or ["no output"])[-1] \
                    if proc.stderr else "no output"
                raise DteError(f"swtpm exited at start: {detail}", "check the swtpm installation")
            if time.monotonic() > deadline:
                raise DteError(f"swtpm did not create its socket within {START_TIMEOUT:.0f} s")
            time.sleep(0.05)
        yield sock
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        if proc.stderr:
            proc.stderr.close()
