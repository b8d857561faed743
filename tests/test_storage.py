"""storage_load (firmware/drivers/storage.c): PCI -> NVMe selection -> parallel reads -> CRC32C per chunk, against
the simulated controller. Expected bytes come from the namespace's backing buffer, expected checksums from the
crc32c package, as `dte build` writes them into WEIGHTS.MAN."""

from __future__ import annotations

import ctypes as C
from collections.abc import Iterator

import crc32c
import numpy as np
import pytest

from devmodels import bindings as B
from devmodels.hosted import find_clang
from devmodels.nvme_rig import Rig
from devmodels.pci_space import MEM64, ConfigSpace, Function

pytestmark = pytest.mark.skipif(find_clang() is None, reason="clang-19 is needed to build the hosted library")

CHUNK = 1 << 20


def make_rig(lba_shift: int) -> Rig:
    r = Rig(blocks=(16 << 20) >> lba_shift, lba_shift=lba_shift, mdts=4)
    space = ConfigSpace({(0, 4, 0): Function(0x1B36, 0x0010, (0x01, 0x08, 0x02),
                                             bars=((0, MEM64, 64 << 10, B.lib().nvme_model_bar(r.model)),))})
    space.install()
    r.space = space  # type: ignore[attr-defined]  # keep the callbacks alive
    B.lib().pci_enumerate()
    return r


@pytest.fixture(params=[9, 12], ids=["512B", "4KiB"])
def dev(request: pytest.FixtureRequest) -> Iterator[Rig]:
    r = make_rig(request.param)
    B.take_log()
    yield r
    B.lib().shim_set_workers(1)
    r.close()


def checksums(data: np.ndarray) -> list[int]:
    return [crc32c.crc32c(data[i:i + CHUNK].tobytes()) for i in range(0, len(data), CHUNK)]


def load(offset: int, size: int, crcs: list[int] | None, *, chunks: int | None = None,
         max_queues: int = 0) -> tuple[int, B.StorageResult, np.ndarray]:
    dst = np.zeros(size, dtype=np.uint8)
    table = (C.c_uint32 * len(crcs))(*crcs) if crcs else None
    req = B.StorageLoad(pci=B.STORAGE_PCI_ENUMERATED, select=b"first", byte_offset=offset, bytes=size,
                        dst=dst.ctypes.data, chunk_size=CHUNK if crcs else 0,
                        chunk_count=(len(crcs) if chunks is None else chunks) if crcs else 0,
                        crc32c=table, max_queues=max_queues, queue_depth=32)
    res = B.StorageResult()
    rc = B.lib().storage_load(C.byref(req), C.byref(res))
    return rc, res, dst


def test_load_and_verify_one_queue(dev: Rig) -> None:
    offset, size = 64 * 1024, 5 * CHUNK + 12345
    want = dev.expected(0, offset + size)[offset:]
    rc, res, got = load(offset, size, checksums(want))
    assert rc == 0, B.take_log()
    assert np.array_equal(got, want)
    assert res.queues == 1 and res.bad_chunk == -1
    log = B.take_log()
    assert f"dte: load bytes={size} " in log and "queues=1" in log
    assert "dte: verify ok chunks=6 " in log
    assert dev.violations() == ""


def test_parallel_load_with_a_queue_per_worker_and_unaligned_start(dev: Rig) -> None:
    B.lib().shim_set_workers(4)
    offset, size = 7 * 512 + 3 * 4096, 6 * CHUNK + 100  # starts inside a 4 KiB block
    want = dev.expected(0, offset + size)[offset:]
    rc, res, got = load(offset, size, checksums(want))
    assert rc == 0, B.take_log()
    assert res.queues == 4
    assert np.array_equal(got, want)
    assert dev.stats().io_queues_created == 4
    assert dev.violations() == ""


def test_corrupted_chunk_is_named(dev: Rig) -> None:
    offset, size = 0, 4 * CHUNK
    want = dev.expected(0, size).copy()
    crcs = checksums(want)
    dev.backing[2 * CHUNK + 777] ^= 0x40       # one flipped bit on the "disk", in chunk 2
    rc, res, _ = load(offset, size, crcs)
    assert rc == B.STORAGE_ERR_CORRUPT
    assert res.bad_chunk == 2
    assert "dte: verify error=crc32c chunk=2 offset=2097152" in B.take_log()


def test_manifest_chunk_count_mismatch_refused(dev: Rig) -> None:
    want = dev.expected(0, 2 * CHUNK)
    rc, _, _ = load(0, 2 * CHUNK, checksums(want), chunks=3)
    assert rc == B.STORAGE_ERR_CORRUPT
    assert "dte: verify error=manifest chunks=3 expected_chunks=2" in B.take_log()


@pytest.mark.parametrize("offset,size", [(4, 8), (508, 8), (4092, 4100), (12 * 512 + 20, 300000)])
def test_read_bytes_at_any_dword_offset(dev: Rig, offset: int, size: int) -> None:
    rc, res, _ = load(0, 4096, None)
    assert rc == 0
    dst = np.zeros(size, dtype=np.uint8)
    assert B.lib().storage_read_bytes(res.ctrl, 1, offset, size, dst.ctypes.data) == 0
    assert np.array_equal(dst, dev.expected(0, offset + size)[offset:])


def test_streaming_reads_allocate_nothing(dev: Rig) -> None:
    # dte_alloc never frees on the firmware, so reads repeated while streaming weights must not allocate.
    rc, res, _ = load(0, 4096, None)
    assert rc == 0
    dst = np.zeros(3000, dtype=np.uint8)
    before = B.lib().shim_alloc_calls()
    for i in range(50):
        offset = 4 * (1000 * i + 7)
        assert B.lib().storage_read_bytes(res.ctrl, 1, offset, 3000, dst.ctypes.data) == 0
        assert np.array_equal(dst, dev.expected(0, offset + 3000)[offset:])
    assert B.lib().shim_alloc_calls() == before


def test_no_pci_functions() -> None:
    ConfigSpace({}).install()
    B.lib().pci_enumerate()
    B.take_log()
    rc, _, _ = load(0, 4096, None)
    assert rc == B.STORAGE_ERR_NO_PCI
    assert "no PCI functions found" in B.take_log()
