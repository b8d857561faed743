"""NVMe driver (firmware/drivers/nvme*.c) against the simulated controller in tests/devmodels/nvme_model.c.

Expected data always comes from the namespace's backing buffer (what the "disk" holds), expected identify values
from what the model was told to report, and status names from the NVMe Base 2.0 status tables.
"""

from __future__ import annotations

import ctypes as C
import threading
import time

import numpy as np
import pytest

from devmodels import bindings as B
from devmodels.hosted import find_clang
from devmodels.nvme_rig import rig

pytestmark = pytest.mark.skipif(find_clang() is None, reason="clang-19 is needed to build the hosted driver library")


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


def _aligned(nbytes: int) -> np.ndarray:
    raw = np.zeros(nbytes + 4096, dtype=np.uint8)
    start = (-raw.ctypes.data) % 4096
    return raw[start:start + nbytes]


def test_model_flags_host_protocol_violations() -> None:
    """The model must catch a misbehaving host, or the clean-violation checks above prove nothing. A tiny host
    written here (NVMe 2.0 section 3.5.1 bring-up by hand) makes three mistakes on purpose."""
    with rig(mqes=63) as r:
        bar = np.ctypeslib.as_array((C.c_uint32 * 1024 * 4).from_address(r.lib.nvme_model_bar(r.model))).reshape(-1)
        asq, acq, data = _aligned(64 * 4), _aligned(16 * 4), _aligned(8192)
        bar[0x24 // 4] = (3 << 16) | 3                       # AQA: 4-entry admin queues
        bar[0x28 // 4], bar[0x2C // 4] = asq.ctypes.data & 0xFFFFFFFF, asq.ctypes.data >> 32
        bar[0x30 // 4], bar[0x34 // 4] = acq.ctypes.data & 0xFFFFFFFF, acq.ctypes.data >> 32
        bar[0x14 // 4] = (6 << 16) | (4 << 20) | 1           # CC: IOSQES 6, IOCQES 4, EN
        deadline = time.monotonic() + 2
        while not bar[0x1C // 4] & 1:
            assert time.monotonic() < deadline, "model never became ready"
            time.sleep(0.001)
        sqe = asq.view(np.uint32).reshape(4, 16)
        sqe[0, 0], sqe[0, 10] = 0x06 | (1 << 16), 1          # Identify Controller ...
        sqe[0, 6], sqe[0, 7] = (data.ctypes.data + 2) & 0xFFFFFFFF, (data.ctypes.data + 2) >> 32  # ... PRP1 % 4 == 2
        sqe[1, 0], sqe[1, 11] = 0x09 | (2 << 16), 0          # Set Features / Number of Queues: 1 pair
        sqe[1, 10] = 0x07
        sqe[2, 0], sqe[2, 10], sqe[2, 11] = 0x05 | (3 << 16), 1 | (127 << 16), 1  # CQ of 128 entries > MQES+1
        sqe[2, 6], sqe[2, 7] = data.ctypes.data & 0xFFFFFFFF, data.ctypes.data >> 32
        bar[0x1000 // 4] = 3                                 # SQ 0 tail
        bar[(0x1000 + 2 * 5 * 4) // 4] = 1                   # doorbell of SQ 5, which was never created
        deadline = time.monotonic() + 2
        while "SQ 5" not in r.violations() and time.monotonic() < deadline:
            time.sleep(0.005)
        found = r.violations()
        assert "PRP1" in found and "not dword aligned" in found
        assert "size 128 outside 2..CAP.MQES+1=64" in found
        assert "doorbell written for SQ 5, which does not exist" in found
        bar[0x14 // 4] = 0                                   # disable before the model goes away


def test_reopen_resets_an_enabled_controller() -> None:
    # NVMe 2.0 section 3.5.2: a controller left enabled (as UEFI's own driver leaves it) is reset, then brought up.
    with rig() as r:
        assert r.open(io_queues=2) == B.NVME_OK
        assert r.read(2, 5, 4096)[0] == B.NVME_OK
        assert r.open(io_queues=1) == B.NVME_OK
        rc, got = r.read(1, 6, 8192)
        assert rc == B.NVME_OK and np.array_equal(got, r.expected(6, 8192))
        assert r.violations() == ""


@pytest.mark.parametrize("fill,rc,text", [
    (0xFF, B.NVME_ERR_NO_DEVICE, "controller registers read all-ones"),
    (0x00, B.NVME_ERR_UNSUPPORTED, "lacks the NVM command set"),
])
def test_absent_or_foreign_bar_fails_fast(fill: int, rc: int, text: str) -> None:
    bar = np.full(0x2000, fill, dtype=np.uint8)
    ctrl = C.c_void_p()
    cfg = B.NvmeConfig(io_queues=1, queue_depth=8, command_timeout_ms=100, nsid=0)
    B.take_log()
    t0 = time.monotonic()
    assert B.lib().nvme_open(bar.ctypes.data, C.byref(cfg), C.byref(ctrl)) == rc
    assert time.monotonic() - t0 < 1.0
    assert text in B.take_log()
