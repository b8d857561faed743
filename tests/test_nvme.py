"""NVMe driver (firmware/drivers/nvme*.c) against the simulated controller in tests/devmodels/nvme_model.c.

Expected data always comes from the namespace's backing buffer (what the "disk" holds), expected identify values
from what the model was told to report, and status names from the NVMe Base 2.0 status tables.
"""

from __future__ import annotations

import ctypes as C
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from devmodels import bindings as B
from devmodels.hosted import find_clang

pytestmark = pytest.mark.skipif(find_clang() is None, reason="clang-19 is needed to build the hosted driver library")


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


def test_bring_up_reports_identify_fields() -> None:
    with rig(blocks=8192, lba_shift=9, mdts=5, dstrd=0, cap_to=3) as r:
        assert r.open(io_queues=2, queue_depth=32) == B.NVME_OK, B.take_log()
        info = r.info
        assert info.serial == b"DTE-MODEL-0001"
        assert info.model == b"dte NVMe model"
        assert info.vendor_id == 0x1B36
        assert info.version == 0x00020000
        assert info.nsid == 1
        assert info.namespace_blocks == 8192
        assert info.block_bytes == 512
        assert info.max_transfer_bytes == (1 << 5) * 4096      # MDTS is in units of CAP.MPSMIN (4 KiB)
        assert info.page_bytes == 4096
        assert info.doorbell_stride == 4
        assert info.ready_timeout_ms == 3 * 500                 # CAP.TO is in 500 ms units
        assert (info.io_queues, info.queue_depth) == (2, 32)
        assert r.stats().io_queues_created == 2
        log = B.take_log()
        assert 'dte: nvme ready model="dte NVMe model" serial="DTE-MODEL-0001"' in log
        assert r.violations() == ""


def test_lba_format_index_above_16_uses_flbas_high_bits() -> None:
    # NVM CS 1.0: with more than 16 formats, FLBAS bits 6:5 are the upper bits of the format index.
    with rig(blocks=256, lba_shift=12, lbaf_index=17) as r:
        assert r.open() == B.NVME_OK, B.take_log()
        assert r.info.block_bytes == 4096
        rc, got = r.read(1, 3, 3 * 4096)
        assert rc == B.NVME_OK
        assert np.array_equal(got, r.expected(3, 3 * 4096))


READ_CASES = [
    # (lba, byte count, destination offset from a page boundary)
    (0, 512, 0),
    (1, 4096, 0),
    (7, 12345, 0),            # ends inside a block: bounce-buffer tail
    (3, 8192 + 100, 4),       # destination not page aligned: PRP1 offset
    (5, 128 * 1024, 0),       # exactly MDTS
    (5, 128 * 1024 + 512, 8),  # just over MDTS
    (11, 1024 * 1024 + 7, 0),  # many commands, partial tail
    (13, 4 * 1024 * 1024, 0),  # more commands than the queue depth (32 x 128 KiB)
]


@pytest.mark.parametrize("lba_shift", [9, 12])
@pytest.mark.parametrize("lba,nbytes,offset", READ_CASES)
def test_read_matches_backing(lba_shift: int, lba: int, nbytes: int, offset: int) -> None:
    blocks = (8 << 20) >> lba_shift
    with rig(blocks=blocks, lba_shift=lba_shift) as r:
        assert r.open() == B.NVME_OK, B.take_log()
        rc, got = r.read(1, lba, nbytes, offset)
        assert rc == B.NVME_OK, B.take_log()
        assert np.array_equal(got, r.expected(lba, nbytes))
        assert r.violations() == ""


def test_stream_keeps_queue_depth_in_flight_and_uses_prp_lists() -> None:
    with rig(blocks=1 << 14, lba_shift=9, mdts=2) as r:  # 16 KiB per command
        assert r.open(queue_depth=32) == B.NVME_OK
        rc, got = r.read(1, 1, 4 << 20)  # 256 commands
        assert rc == B.NVME_OK
        assert np.array_equal(got, r.expected(1, 4 << 20))
        s = r.stats()
        assert s.io_commands == 256
        assert s.max_transfer == 16 * 1024
        assert s.max_outstanding >= 32
        assert s.prp_list_commands == 256    # 16 KiB from an aligned buffer touches 4 pages: PRP list
        assert r.violations() == ""


def test_unlimited_mdts_is_capped_by_one_prp_list_page() -> None:
    with rig(blocks=1 << 14, lba_shift=9, mdts=0) as r:
        assert r.open() == B.NVME_OK
        assert r.info.max_transfer_bytes == 512 * 4096  # 512 PRP entries in one 4 KiB list page
        rc, got = r.read(1, 2, 5 << 20, 12)
        assert rc == B.NVME_OK
        assert np.array_equal(got, r.expected(2, 5 << 20))
        assert r.violations() == ""


def test_out_of_order_completions_matched_by_command_id() -> None:
    with rig(blocks=1 << 13, mdts=1, reorder=8) as r:
        assert r.open(queue_depth=40) == B.NVME_OK
        rc, got = r.read(1, 9, (3 << 20) + 300)
        assert rc == B.NVME_OK
        assert np.array_equal(got, r.expected(9, (3 << 20) + 300))
        assert r.violations() == ""


def test_queue_pairs_read_concurrently_from_threads() -> None:
    with rig(blocks=1 << 14, mdts=3) as r:
        assert r.open(io_queues=4, queue_depth=32) == B.NVME_OK
        assert r.info.io_queues == 4
        results: dict[int, bool] = {}

        def worker(qid: int) -> None:
            lba = qid * 1000
            rc, got = r.read(qid, lba, 1 << 20)
            results[qid] = rc == B.NVME_OK and np.array_equal(got, r.expected(lba, 1 << 20))

        threads = [threading.Thread(target=worker, args=(q,)) for q in range(1, 5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert results == {1: True, 2: True, 3: True, 4: True}
        assert r.violations() == ""


def test_fewer_queues_granted_than_asked() -> None:
    with rig(max_io_queues=2) as r:
        assert r.open(io_queues=6) == B.NVME_OK
        assert r.info.io_queues == 2
        assert r.stats().io_queues_created == 2
        assert r.read(2, 0, 4096)[0] == B.NVME_OK
        assert r.read(3, 0, 4096)[0] == B.NVME_ERR_ARGUMENT
        assert r.violations() == ""


def test_doorbell_stride_and_small_mqes() -> None:
    with rig(dstrd=2, mqes=15) as r:  # doorbells every 16 bytes; at most 16 entries per queue
        assert r.open(queue_depth=64) == B.NVME_OK
        assert r.info.doorbell_stride == 16
        assert r.info.queue_depth == 15    # 16 entries, one always empty
        rc, got = r.read(1, 0, 1 << 20)
        assert rc == B.NVME_OK
        assert np.array_equal(got, r.expected(0, 1 << 20))
        assert r.violations() == ""


def test_misaligned_destination_and_range_rejected() -> None:
    with rig(blocks=1024) as r:
        assert r.open() == B.NVME_OK
        buf = np.zeros(8192, dtype=np.uint8)
        assert r.lib.nvme_read(r.ctrl, 1, 0, 512, buf.ctypes.data + 1) == B.NVME_ERR_ARGUMENT
        assert r.read(1, 1020, 5 * 512)[0] == B.NVME_ERR_ARGUMENT
        assert "range beyond the end of the namespace" in B.take_log()
        assert r.read(1, 1020, 4 * 512)[0] == B.NVME_OK


@pytest.mark.parametrize("sct,sc,name", [
    (2, 0x81, "Unrecovered Read Error"),
    (0, 0x80, "LBA Out of Range"),
    (0, 0x04, "Data Transfer Error"),
    (2, 0x86, "Access Denied"),
])
def test_command_error_is_named_and_queue_recovers(sct: int, sc: int, name: str) -> None:
    with rig(mdts=1) as r:
        assert r.open() == B.NVME_OK
        r.lib.nvme_model_inject(r.model, B.FAULT_STATUS, 5, sct, sc)
        assert r.read(1, 0, 1 << 20)[0] == B.NVME_ERR_COMMAND
        log = B.take_log()
        assert f'status="{name}" sct={hex(sct)} sc={hex(sc)} qid=1' in log
        assert "lba=80 blocks=16" in log  # I/O command 5 (0-based) of 8 KiB reads starts at block 5 * 16
        rc, got = r.read(1, 3, 64 * 1024)  # the queue is clean again
        assert rc == B.NVME_OK
        assert np.array_equal(got, r.expected(3, 64 * 1024))
        assert r.violations() == ""


def test_status_names_follow_the_spec_tables() -> None:
    name = B.lib().nvme_status_name
    assert name(0, 0x01) == b"Invalid Command Opcode"
    assert name(0, 0x0B) == b"Invalid Namespace or Format"
    assert name(1, 0x01) == b"Invalid Queue Identifier"
    assert name(1, 0x02) == b"Invalid Queue Size"
    assert name(2, 0x87) == b"Deallocated or Unwritten Logical Block"
    assert name(0, 0x7F) == b"Unknown Status"


def test_controller_fatal_status_reported_without_hang() -> None:
    with rig(mdts=1) as r:
        assert r.open(timeout_ms=5000) == B.NVME_OK
        r.lib.nvme_model_inject(r.model, B.FAULT_FATAL, 3, 0, 0)
        t0 = time.monotonic()
        assert r.read(1, 0, 1 << 20)[0] == B.NVME_ERR_FATAL
        assert time.monotonic() - t0 < 2.0       # noticed from CSTS, not by waiting out the timeout
        assert "error=controller_fatal" in B.take_log()
        assert r.read(1, 0, 512)[0] == B.NVME_ERR_FAILED


def test_dropped_completion_times_out_by_name() -> None:
    with rig(mdts=1) as r:
        assert r.open(timeout_ms=300) == B.NVME_OK
        r.lib.nvme_model_inject(r.model, B.FAULT_DROP, 10, 0, 0)
        t0 = time.monotonic()
        assert r.read(1, 0, 1 << 20)[0] == B.NVME_ERR_TIMEOUT
        elapsed = time.monotonic() - t0
        assert 0.25 < elapsed < 3.0
        log = B.take_log()
        assert "dte: nvme error=timeout qid=1" in log and "timeout_ms=300" in log
        assert "lba=160" in log                  # the dropped command (number 10 x 16 blocks)


def test_never_ready_controller_times_out_after_cap_to() -> None:
    with rig(cap_to=1) as r:
        r.lib.nvme_model_inject(r.model, B.FAULT_NEVER_READY, 0, 0, 0)
        t0 = time.monotonic()
        assert r.open() == B.NVME_ERR_NOT_READY
        elapsed = time.monotonic() - t0
        assert 0.45 < elapsed < 3.0              # CAP.TO = 1 -> 500 ms
        assert "dte: nvme error=not_ready want_rdy=1" in B.take_log()
