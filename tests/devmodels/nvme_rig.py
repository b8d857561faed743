"""A simulated NVMe controller (nvme_model.c) with a random namespace, plus the driver opened on it."""

from __future__ import annotations

import ctypes as C
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from . import bindings as B


class Rig:
    """A model controller with a random namespace, and the driver opened on it."""

    def __init__(self, *, blocks: int = 4096, lba_shift: int = 9, mdts: int = 5, mqes: int = 1023,
                 dstrd: int = 0, cap_to: int = 2, max_io_queues: int = 16, reorder: int = 0,
                 lbaf_index: int = 0, serial: bytes = b"DTE-MODEL-0001", seed: int = 1) -> None:
        self.lib = B.lib()
        rng = np.random.default_rng(seed)
        self.backing = rng.integers(0, 256, size=blocks << lba_shift, dtype=np.uint8)
        self.cfg = B.ModelConfig(backing=self.backing.ctypes.data, nsze=blocks, lba_shift=lba_shift,
                                 lbaf_index=lbaf_index, mdts=mdts, mqes=mqes, dstrd=dstrd, cap_to=cap_to,
                                 ready_delay_us=2000, max_io_queues=max_io_queues, reorder=reorder,
                                 serial=serial, model=b"dte NVMe model", vendor_id=0x1B36)
        self.model = self.lib.nvme_model_create(C.byref(self.cfg))
        assert self.model
        self.ctrl = C.c_void_p()
        B.take_log()

    def open(self, io_queues: int = 1, queue_depth: int = 32, timeout_ms: int = 2000) -> int:
        cfg = B.NvmeConfig(io_queues=io_queues, queue_depth=queue_depth, command_timeout_ms=timeout_ms, nsid=0)
        return self.lib.nvme_open(self.lib.nvme_model_bar(self.model), C.byref(cfg), C.byref(self.ctrl))

    @property
    def info(self) -> B.NvmeInfo:
        return self.lib.nvme_get_info(self.ctrl).contents

    def read(self, qid: int, lba: int, nbytes: int, dst_offset: int = 0) -> tuple[int, np.ndarray]:
        buf = np.zeros(nbytes + dst_offset + 64, dtype=np.uint8)
        rc = self.lib.nvme_read(self.ctrl, qid, lba, nbytes, buf.ctypes.data + dst_offset)
        return rc, buf[dst_offset:dst_offset + nbytes]

    def expected(self, lba: int, nbytes: int) -> np.ndarray:
        start = lba << self.cfg.lba_shift
        return self.backing[start:start + nbytes]

    def violations(self) -> str:
        buf = C.create_string_buffer(8192)
        n = self.lib.nvme_model_violations(self.model, buf, len(buf))
        return f"{n} violation(s):\n{buf.value.decode()}" if n else ""

    def stats(self) -> B.ModelStats:
        s = B.ModelStats()
        self.lib.nvme_model_stats(self.model, C.byref(s))
        return s

    def close(self) -> None:
        self.lib.nvme_model_destroy(self.model)


@contextmanager
def rig(**kw: int | bytes) -> Iterator[Rig]:
    r = Rig(**kw)  # type: ignore[arg-type]
    try:
        yield r
    finally:
        r.close()
