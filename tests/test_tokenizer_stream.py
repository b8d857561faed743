"""The streaming UTF-8 joiner (engine/tokenizer.h dte_utf8_stream) that generation uses for token pieces: every
chunk it releases is whole UTF-8 (Python's decoder is the judge), and the chunks add up to the input bytes."""

from __future__ import annotations

import ctypes
import random

from dte_build import engine


class Stream(ctypes.Structure):
    _fields_ = [("held", ctypes.c_uint8 * 4), ("n_held", ctypes.c_uint8)]


def run(pieces: list[bytes]) -> list[bytes]:
    lib = engine.load_library()
    lib.dte_utf8_stream_push.argtypes = [ctypes.POINTER(Stream), ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    lib.dte_utf8_stream_flush.argtypes = [ctypes.POINTER(Stream), ctypes.c_char_p]
    state = Stream()
    out = []
    for piece in pieces:
        buf = ctypes.create_string_buffer(len(piece) + 4)
        n = lib.dte_utf8_stream_push(ctypes.byref(state), piece, len(piece), buf)
        out.append(buf.raw[:n])
    buf = ctypes.create_string_buffer(4)
    n = lib.dte_utf8_stream_flush(ctypes.byref(state), buf)
    out.append(buf.raw[:n])
    return out


def test_split_characters_come_out_whole() -> None:
    text = "naïve ß → 日本語 🦙👨‍👩‍👧 𝄞 done".encode()
    rng = random.Random(7)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(text)), rng.randint(1, 12)))
        pieces = [text[a:b] for a, b in zip([0] + cuts, cuts + [len(text)])]
        chunks = run(pieces)
        assert b"".join(chunks) == text
        for chunk in chunks:
            chunk.decode("utf-8")   # raises on a split character


def test_bytes_that_never_complete_pass_through() -> None:
    pieces = [b"a\xe6", b"\x97", b"b", b"\xff", b"\xf0\x9f"]
    chunks = run(pieces)
    assert b"".join(chunks) == b"".join(pieces)
    assert chunks[-1] == b"\xf0\x9f"   # held to the end, then flushed
