"""firmware/lib/sha256.c and hmac_sha256.c against Python's hashlib/hmac (an independent implementation)."""

from __future__ import annotations

import ctypes
import hashlib
import hmac
import random

import pytest

from _hostc import build, firmware

# FIPS 180-4 example messages with their published digests (NIST CSRC "SHA256.pdf" examples).
NIST_VECTORS = [
    (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    (b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    (b"a" * 1_000_000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
]

# RFC 4231 HMAC-SHA256 test cases 1, 2 and 6 (key longer than the block size).
RFC4231 = [
    (b"\x0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
]


PORTABLE, SHA_EXTENSIONS = 1, 2


@pytest.fixture(scope="module", params=[PORTABLE, SHA_EXTENSIONS], ids=["portable", "sha-extensions"])
def lib(request: pytest.FixtureRequest) -> ctypes.CDLL:
    """The C library with one block function forced; every test runs against both."""
    so = build("sha256", firmware("lib/sha256.c", "lib/hmac_sha256.c"), shared=True)
    cdll = ctypes.CDLL(str(so))
    if cdll.dte_sha256_select(request.param) != request.param:
        pytest.skip("this CPU has no SHA extensions (CPUID.7.0:EBX bit 29)")
    cdll.dte_sha256.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p]
    cdll.dte_hmac_sha256_setkey.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    cdll.dte_hmac_sha256.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p]
    cdll.dte_hmac_sha256_verify.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p]
    cdll.dte_hmac_sha256_verify.restype = ctypes.c_bool
    cdll.dte_sha256_init.argtypes = [ctypes.c_void_p]
    cdll.dte_sha256_update.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    cdll.dte_sha256_final.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    return cdll


def c_sha256(lib: ctypes.CDLL, data: bytes) -> bytes:
    out = ctypes.create_string_buffer(32)
    lib.dte_sha256(data, len(data), out)
    return out.raw


def c_hmac(lib: ctypes.CDLL, key: bytes, data: bytes) -> bytes:
    prepared = ctypes.create_string_buffer(1024)   # >= sizeof(dte_hmac_sha256_key)
    lib.dte_hmac_sha256_setkey(prepared, key, len(key))
    out = ctypes.create_string_buffer(32)
    lib.dte_hmac_sha256(prepared, data, len(data), out)
    return out.raw


@pytest.mark.parametrize("message,digest", NIST_VECTORS, ids=["abc", "empty", "448bit", "million-a"])
def test_sha256_nist_vectors(lib: ctypes.CDLL, message: bytes, digest: str) -> None:
    assert c_sha256(lib, message).hex() == digest
    assert hashlib.sha256(message).hexdigest() == digest   # the vector itself is right


def test_sha256_random_lengths_match_hashlib(lib: ctypes.CDLL) -> None:
    rng = random.Random(1)
    for size in list(range(0, 200)) + [rng.randrange(200, 5000) for _ in range(50)]:
        data = rng.randbytes(size)
        assert c_sha256(lib, data) == hashlib.sha256(data).digest(), size


def test_sha256_streaming_in_odd_pieces_matches_hashlib(lib: ctypes.CDLL) -> None:
    rng = random.Random(2)
    data = rng.randbytes(10_000)
    ctx = ctypes.create_string_buffer(256)
    lib.dte_sha256_init(ctx)
    pos = 0
    while pos < len(data):
        step = rng.choice([0, 1, 3, 63, 64, 65, 127, 500])
        lib.dte_sha256_update(ctx, data[pos:pos + step], len(data[pos:pos + step]))
        pos += step
    out = ctypes.create_string_buffer(32)
    lib.dte_sha256_final(ctx, out)
    assert out.raw == hashlib.sha256(data).digest()


@pytest.mark.parametrize("key,message,tag", RFC4231, ids=["case1", "case2", "case6-long-key"])
def test_hmac_rfc4231_vectors(lib: ctypes.CDLL, key: bytes, message: bytes, tag: str) -> None:
    assert c_hmac(lib, key, message).hex() == tag


def test_hmac_random_keys_and_messages_match_python_hmac(lib: ctypes.CDLL) -> None:
    rng = random.Random(3)
    for _ in range(300):
        key = rng.randbytes(rng.choice([0, 1, 16, 32, 63, 64, 65, 100, 200]))
        message = rng.randbytes(rng.randrange(0, 1500))
        assert c_hmac(lib, key, message) == hmac.new(key, message, hashlib.sha256).digest()


def test_hmac_verify_rejects_each_flipped_bit(lib: ctypes.CDLL) -> None:
    key, message = b"k" * 32, b"frame bytes"
    prepared = ctypes.create_string_buffer(1024)
    lib.dte_hmac_sha256_setkey(prepared, key, len(key))
    tag = hmac.new(key, message, hashlib.sha256).digest()
    assert lib.dte_hmac_sha256_verify(prepared, message, len(message), tag)
    for bit in range(256):
        bad = bytearray(tag)
        bad[bit // 8] ^= 1 << (bit % 8)
        assert not lib.dte_hmac_sha256_verify(prepared, message, len(message), bytes(bad))
