"""Fuzzing the engine's GGUF parser + model/tokenizer construction under ASan/UBSan.

A child Python process preloads the ASan runtime, loads the sanitizer build of the hosted library and feeds it
a few thousand mutations of a valid model (truncations, flipped bytes, huge counts/lengths/dims/offsets), each in
an exact-size malloc buffer so any read past the end is caught, then random bytes through the tokenizer and
detokenizer (small output buffers). The child aborts on the first sanitizer report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dte_build import engine
from dte_build.errors import DteError
from model_factory import ModelSpec, make_model

DRIVER = r'''
import ctypes, json, random, struct, sys
lib = ctypes.CDLL(sys.argv[1])
data = open(sys.argv[2], "rb").read()
n_random = int(sys.argv[3])
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
lib.dte_host_model_check.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_char_p, ctypes.c_size_t]
err = ctypes.create_string_buffer(256)
stats = {"cases": 0, "ok": 0, "rejected": 0, "codes": {}}

def check(buf):
    p = libc.malloc(max(1, len(buf)))
    ctypes.memmove(p, buf, len(buf))
    rc = lib.dte_host_model_check(p, len(buf), err, 256)
    libc.free(p)
    stats["cases"] += 1
    stats["ok" if rc == 0 else "rejected"] += 1
    stats["codes"][str(rc)] = stats["codes"].get(str(rc), 0) + 1
    return rc

assert check(data) == 0, err.value
rng = random.Random(1234)
# the metadata region: header, kv pairs, tensor infos (before the tensor data)
meta = int(sys.argv[4])
for n in list(range(0, min(meta, 600))) + list(range(600, len(data), max(1, len(data) // 400))):
    check(data[:n])
for _ in range(n_random):
    b = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        b[rng.randrange(meta)] = rng.randrange(256)
    check(bytes(b))
# huge values written over every 8-byte-aligned-ish position of the metadata (counts, lengths, dims, offsets)
for pos in range(4, meta - 8, 3):
    for value in (2**64 - 1, 2**63, 2**32, 2**31 - 1, 0xFFFFFFFF):
        b = bytearray(data)
        b[pos:pos + 8] = struct.pack("<Q", value)
        check(bytes(b))
    b = bytearray(data)
    b[pos:pos + 4] = struct.pack("<I", 0xFFFFFFFF)
    check(bytes(b))
# the tokenizer on random bytes (invalid UTF-8, lone continuation bytes, escapes split by lead bytes)
lib.dte_host_load.argtypes = [ctypes.c_char_p, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32,
                              ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_size_t]
lib.dte_host_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int32,
                                  ctypes.c_int32, ctypes.c_void_p, ctypes.c_int64]
lib.dte_host_tokenize.restype = ctypes.c_int64
lib.dte_host_token_piece.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32, ctypes.c_char_p,
                                     ctypes.c_int32]
h = ctypes.c_void_p()
assert lib.dte_host_load(sys.argv[2].encode(), 16, 4, 1, ctypes.byref(h), err, 256) == 0, err.value
alphabet = [b" ", b"a", b"b", b"\xe2", b"\x96", b"\x81", b"\xc3", b"\xa9", b"\xf0", b"\x80", b"\xff", b"\n"]
piece = ctypes.create_string_buffer(8)
for i in range(600):
    text = b"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) if i % 2 else rng.randbytes(rng.randint(0, 60))
    p = libc.malloc(max(1, len(text)))
    ctypes.memmove(p, text, len(text))
    cap = rng.randint(0, 4)
    ids = libc.malloc(4 * max(1, cap))
    n = lib.dte_host_tokenize(h, p, len(text), i % 3 == 0, i % 2, ids, cap)
    assert n >= 0
    out = (ctypes.c_int32 * max(1, n))()
    assert lib.dte_host_tokenize(h, p, len(text), 0, i % 2, out, n) <= n
    for t in list(out[:n]) + [-1, 10**6]:
        lib.dte_host_token_piece(h, t, i % 2, piece, rng.randint(0, 8))
    libc.free(ids)
    libc.free(p)
    stats["tokenized"] = stats.get("tokenized", 0) + 1
print(json.dumps(stats))
'''


@pytest.fixture(scope="module")
def asan_setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, int]:
    try:
        lib = engine.build_host_library(sanitize=True)
        runtime = engine.asan_runtime()
    except DteError as exc:
        pytest.skip(f"sanitizer build unavailable: {exc}")
    tmp = tmp_path_factory.mktemp("fuzz")
    model = make_model(tmp / "small.gguf", ModelSpec(n_vocab=40, n_embd=32, n_ff=32, n_head=2, n_head_kv=1,
                                                     n_layer=1))
    import gguf

    meta = gguf.GGUFReader(str(model)).data_offset
    return lib, runtime, model, meta


def run_driver(asan_setup: tuple[Path, Path, Path, int], n_random: int) -> dict:
    lib, runtime, model, meta = asan_setup
    env = dict(os.environ, LD_PRELOAD=str(runtime),
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1",
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(lib), str(model), str(n_random), str(meta)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, f"sanitizer/crash report:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_parser_survives_mutations_under_asan(asan_setup: tuple[Path, Path, Path, int]) -> None:
    stats = run_driver(asan_setup, n_random=2000)
    assert stats["cases"] > 3000
    assert stats["rejected"] > stats["cases"] // 2   # most mutations must be refused, not silently accepted
    assert stats["ok"] >= 1
    assert stats["tokenized"] == 600


# ---- byte-level BPE vocabularies: mutated metadata, and random text through every pre-tokenizer family ----

BPE_DRIVER = r'''
import ctypes, json, random, sys
lib = ctypes.CDLL(sys.argv[1])
paths = sys.argv[2:]
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
lib.dte_host_vocab_check.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_char_p, ctypes.c_size_t]
lib.dte_host_load_vocab.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_size_t]
lib.dte_host_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int32,
                                  ctypes.c_int32, ctypes.c_void_p, ctypes.c_int64]
lib.dte_host_tokenize.restype = ctypes.c_int64
lib.dte_host_token_piece.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32, ctypes.c_char_p,
                                     ctypes.c_int32]
err = ctypes.create_string_buffer(256)
stats = {"cases": 0, "rejected": 0, "tokenized": 0}
rng = random.Random(99)

def check(buf):
    p = libc.malloc(max(1, len(buf)))
    ctypes.memmove(p, buf, len(buf))
    rc = lib.dte_host_vocab_check(p, len(buf), err, 256)
    libc.free(p)
    stats["cases"] += 1
    stats["rejected"] += rc != 0

data = open(paths[0], "rb").read()
for n in range(0, len(data), max(1, len(data) // 300)):
    check(data[:n])
for _ in range(600):
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        b[rng.randrange(len(b))] = rng.randrange(256)
    check(bytes(b))
alphabet = ["a", "B", "'s", "'LL", " ", "  ", "\n", "\r\n", "\t", "1", "234", "\u00a0", "\u3000", "é", "e\u0301",
            "日本", "한", "🦙", "!", "$", "...", "<|im_start|>", "<|im_end|>", "<tool>", "\u0301"]
for path in paths:
    h = ctypes.c_void_p()
    assert lib.dte_host_load_vocab(path.encode(), ctypes.byref(h), err, 256) == 0, (path, err.value)
    piece = ctypes.create_string_buffer(8)
    for i in range(150):
        if i % 3:
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))).encode()
        else:
            text = rng.randbytes(rng.randint(0, 60))
        p = libc.malloc(max(1, len(text)))
        ctypes.memmove(p, text, len(text))
        n = lib.dte_host_tokenize(h, p, len(text), i & 1, i & 2, None, 0)
        assert n >= 0
        out = (ctypes.c_int32 * max(1, n))()
        assert lib.dte_host_tokenize(h, p, len(text), i & 1, i & 2, out, n) == n
        for t in list(out[:n]) + [-1, 10**6]:
            lib.dte_host_token_piece(h, t, i & 1, piece, rng.randint(0, 8))
        libc.free(p)
        stats["tokenized"] += 1
print(json.dumps(stats))
'''

PRE_TOKENIZERS = ["llama-bpe", "qwen2", "qwen35", "smollm", "gpt-2", "falcon", "default", "deepseek-llm",
                  "deepseek-coder"]


def tiny_bpe_vocab(path: Path, pre: str) -> Path:
    """Every GPT-2 byte symbol, a few merges, a control and a user-defined token."""
    import gguf

    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    extra = iter(range(256, 512))
    byte_char = {b: chr(b if b in printable else next(extra)) for b in range(256)}
    tokens = [byte_char[b] for b in range(256)]
    merges = [("Ġ", "a"), ("Ġa", "B"), ("1", "2"), ("12", "3"), ("'", "s")]
    tokens += [a + b for a, b in merges] + ["<|im_start|>", "<|im_end|>", "<tool>"]
    types = [gguf.TokenType.NORMAL] * (len(tokens) - 3) + [gguf.TokenType.CONTROL] * 2 + [
        gguf.TokenType.USER_DEFINED]
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges([f"{a} {b}" for a, b in merges])
    w.add_bos_token_id(len(tokens) - 3)
    w.add_eos_token_id(len(tokens) - 2)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_bpe_vocabularies_survive_under_asan(asan_setup: tuple[Path, Path, Path, int], tmp_path: Path) -> None:
    lib, runtime, _, _ = asan_setup
    paths = [str(tiny_bpe_vocab(tmp_path / f"{pre}.gguf", pre)) for pre in PRE_TOKENIZERS]
    env = dict(os.environ, LD_PRELOAD=str(runtime),
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1",
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    proc = subprocess.run([sys.executable, "-c", BPE_DRIVER, str(lib), *paths], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, f"sanitizer/crash report:\n{proc.stderr[-4000:]}"
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    assert stats["cases"] > 800 and stats["rejected"] > 300
    assert stats["tokenized"] == 150 * len(PRE_TOKENIZERS)
