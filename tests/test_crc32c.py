"""firmware/lib/crc32c.c against the crc32c package (an independent implementation) and the RFC 3720 check value."""

from __future__ import annotations

import ctypes as C

import crc32c
import numpy as np
import pytest

from devmodels import bindings as B
from devmodels.hosted import find_clang

pytestmark = pytest.mark.skipif(find_clang() is None, reason="clang-19 is needed to build the hosted library")

IMPLEMENTATIONS = ["crc32c_update", "crc32c_update_table", "crc32c_update_sse42"]


def run(name: str, data: bytes | np.ndarray, value: int = 0) -> int:
    if name == "crc32c_update_sse42" and not B.lib().crc32c_cpu_has_sse42():
        pytest.skip("this CPU lacks SSE4.2")
    buf = np.frombuffer(bytes(data), dtype=np.uint8) if isinstance(data, bytes) else data
    return int(getattr(B.lib(), name)(value, buf.ctypes.data if len(buf) else None, len(buf)))


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_check_value(name: str) -> None:
    assert run(name, b"123456789") == 0xE3069283  # CRC-32C check value (RFC 3720 B.4, reveng catalogue)
    assert run(name, b"") == 0


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
@pytest.mark.parametrize("length", [1, 7, 8, 15, 16, 17, 63, 4095, 1 << 20])
@pytest.mark.parametrize("offset", [0, 1, 3, 7])
def test_matches_crc32c_package(name: str, length: int, offset: int) -> None:
    raw = np.random.default_rng(length * 8 + offset).integers(0, 256, length + 8, dtype=np.uint8)
    view = raw[offset:offset + length]  # unaligned starts exercise the byte-wise head
    assert run(name, view) == crc32c.crc32c(view.tobytes())


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_incremental_chunks_match_whole(name: str) -> None:
    data = np.random.default_rng(7).integers(0, 256, 3 * (1 << 20) + 123, dtype=np.uint8)
    value = 0
    for start in range(0, len(data), 1 << 20):
        value = run(name, data[start:start + (1 << 20)], value)
    assert value == crc32c.crc32c(data.tobytes())
    assert C.sizeof(C.c_uint32) == 4
