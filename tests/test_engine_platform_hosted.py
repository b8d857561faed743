"""The hosted platform layer (firmware/hosted/platform_hosted.c): dte_parallel_for covers [0, n) exactly once
with valid worker indices, rejects nested calls, and dte_alloc honours alignment and zeroing (platform.h)."""

from __future__ import annotations

import ctypes
import threading

import pytest

from dte_build.engine import load_library

RANGE_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int)


@pytest.fixture(scope="module")
def lib() -> ctypes.CDLL:
    lib = load_library()
    lib.dte_parallel_for.argtypes = [ctypes.c_int64, RANGE_FN, ctypes.c_void_p]
    lib.dte_parallel_for.restype = ctypes.c_int
    lib.dte_hosted_set_threads.argtypes = [ctypes.c_int]
    lib.dte_alloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
    lib.dte_alloc.restype = ctypes.c_void_p
    return lib


@pytest.mark.parametrize("threads, n", [(1, 10), (2, 1), (3, 7), (3, 1000), (4, 100003)])
def test_covers_range_once(lib: ctypes.CDLL, threads: int, n: int) -> None:
    assert lib.dte_hosted_set_threads(threads) == 0
    assert lib.dte_worker_count() == threads
    seen = bytearray(n)
    workers: set[int] = set()
    lock = threading.Lock()

    def fn(_arg: object, begin: int, end: int, worker: int) -> None:
        with lock:
            workers.add(worker)
            for i in range(begin, end):
                seen[i] += 1

    cb = RANGE_FN(fn)
    assert lib.dte_parallel_for(n, cb, None) == 0
    assert seen == bytearray([1]) * n
    assert workers <= set(range(threads))


def test_nested_call_is_rejected(lib: ctypes.CDLL) -> None:
    assert lib.dte_hosted_set_threads(2) == 0
    inner: list[int] = []

    def fn(_arg: object, begin: int, end: int, worker: int) -> None:
        inner.append(lib.dte_parallel_for(4, noop, None))

    noop = RANGE_FN(lambda *_: None)
    cb = RANGE_FN(fn)
    assert lib.dte_parallel_for(8, cb, None) == 0
    assert inner and all(rc == -1 for rc in inner)
    assert lib.dte_parallel_for(4, noop, None) == 0   # usable again afterwards


def test_alloc_aligned_and_zeroed(lib: ctypes.CDLL) -> None:
    for align in (8, 64, 4096):
        p = lib.dte_alloc(1000, align)
        assert p and p % align == 0
        assert ctypes.string_at(p, 1000) == b"\0" * 1000
