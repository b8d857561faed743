"""The ROWS4 weight layout (docs/kernels.md "Weight layouts"; engine/layout.c through dte_build.layout) against an
independent numpy model of the layout as the docs describe it, byte for byte; round trips; the tensor list
(dte_layout_ranges) against gguf-py's reader."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from dte_build import layout
from dte_build.errors import DteError

# ggml type id -> (block bytes, field sizes in block order), from ggml-common.h's block structs
BLOCKS = {
    2: (18, [2, 16]),          # Q4_0: d, qs
    3: (20, [2, 2, 16]),       # Q4_1: d, m, qs
    6: (22, [2, 4, 16]),       # Q5_0: d, qh, qs
    7: (24, [2, 2, 4, 16]),    # Q5_1: d, m, qh, qs
    8: (34, [2, 32]),          # Q8_0: d, qs
}
OTHER = {0: 4, 1: 2, 12: 144, 30: 2}  # F32, F16, Q4_K, BF16: no rows layout (bytes per block of 1/1/256/1)


def np_pack(type_id: int, n_cols: int, n_rows: int, data: bytes) -> bytes:
    """The docs' description: groups of 4 rows; block b of the 4 rows side by side; inside, each field of the 4
    rows together (field-major, then row); the n_rows mod 4 remainder unchanged."""
    bb, sizes = BLOCKS[type_id]
    nb = n_cols // 32
    rb = nb * bb
    raw = np.frombuffer(data, np.uint8)
    full = n_rows // 4 * 4
    out = raw.copy()
    g = raw[:full * rb].reshape(full // 4, 4, nb, bb)  # group, row, block, byte
    parts, o = [], 0
    for s in sizes:
        parts.append(g[:, :, :, o:o + s].transpose(0, 2, 1, 3).reshape(full // 4, nb, 4 * s))
        o += s
    out[:full * rb] = np.concatenate(parts, axis=2).reshape(-1)
    return out.tobytes()


@pytest.mark.parametrize("type_id", sorted(BLOCKS))
@pytest.mark.parametrize("n_rows", [1, 3, 4, 5, 7, 8, 13, 64])
@pytest.mark.parametrize("n_cols", [32, 96, 256])
def test_pack_matches_numpy_and_round_trips(type_id: int, n_rows: int, n_cols: int) -> None:
    rng = np.random.default_rng(type_id * 1000 + n_rows * 10 + n_cols)
    data = rng.integers(0, 256, n_rows * n_cols // 32 * BLOCKS[type_id][0], dtype=np.uint8).tobytes()
    packed = layout.pack(type_id, n_cols, n_rows, data)
    assert bytes(packed) == np_pack(type_id, n_cols, n_rows, data)
    if n_rows >= 4:
        assert bytes(packed) != data
    assert bytes(layout.unpack(type_id, n_cols, n_rows, packed)) == data


@pytest.mark.parametrize("type_id", sorted(BLOCKS))
def test_pieces_of_whole_groups(type_id: int) -> None:
    """A tensor transformed in pieces that start at group boundaries equals the whole, into a given buffer."""
    n_cols, n_rows = 128, 23
    rb = n_cols // 32 * BLOCKS[type_id][0]
    data = np.random.default_rng(7).integers(0, 256, n_rows * rb, dtype=np.uint8).tobytes()
    whole = layout.pack(type_id, n_cols, n_rows, data)
    out = bytearray(len(data))
    view = memoryview(out)
    for start, stop in ((0, 8), (8, 20), (20, 23)):
        layout.pack(type_id, n_cols, stop - start, memoryview(data)[start * rb:stop * rb],
                    view[start * rb:stop * rb])
    assert out == whole
    back = bytearray(len(data))
    layout.unpack(type_id, n_cols, n_rows, out, back)
    assert back == data


@pytest.mark.parametrize("type_id", sorted(OTHER))
def test_types_without_rows_layout_are_copied(type_id: int) -> None:
    n_cols = 256
    size = n_cols * OTHER[type_id] if type_id != 12 else OTHER[type_id]
    data = np.random.default_rng(3).integers(0, 256, 8 * size, dtype=np.uint8).tobytes()
    assert bytes(layout.pack(type_id, n_cols, 8, data)) == data
    assert not layout.applies(layout.ROWS4, type_id, 2, 8)


def test_gguf_layout_is_a_copy() -> None:
    data = bytes(range(144))
    assert bytes(layout.pack(2, 32, 8, data, layout=layout.GGUF)) == data


def test_applies_rule() -> None:
    assert layout.applies(layout.ROWS4, 2, 2, 4)
    assert not layout.applies(layout.ROWS4, 2, 2, 3)      # fewer than one group
    assert not layout.applies(layout.ROWS4, 2, 1, 4)      # 1-D
    assert not layout.applies(layout.ROWS4, 2, 3, 4)      # n_dims 3
    assert not layout.applies(layout.GGUF, 2, 2, 64)


def test_bad_buffers_refused() -> None:
    with pytest.raises(DteError):
        layout.pack(2, 32, 4, bytes(18 * 3))              # input shorter than 4 rows
    with pytest.raises(DteError):
        layout.pack(2, 32, 4, bytes(18 * 4), bytes(18 * 4))  # read-only output
    with pytest.raises(DteError):
        layout.pack(2, 33, 4, bytes(18 * 4))              # not whole blocks


def _write_model(path: Path) -> None:
    w = gguf.GGUFWriter(str(path), "llama")
    rng = np.random.default_rng(0)
    q = gguf.GGMLQuantizationType
    specs = [("a", q.Q4_0, (5, 64)), ("v1", q.Q8_0, (64,)), ("f", q.F16, (8, 32)), ("small", q.Q4_1, (3, 32)),
             ("k", q.Q4_K, (4, 256)), ("b", q.Q5_0, (12, 96)), ("c", q.Q8_0, (4, 32)), ("d", q.Q5_1, (9, 32))]
    for name, t, shape in specs:
        data = rng.standard_normal(shape).astype(np.float32)
        if t == q.F16:
            w.add_tensor(name, data.astype(np.float16))
        elif t == q.Q4_K:  # gguf-py cannot quantize K-quants: any bytes of the right size (never read here)
            w.add_tensor(name, rng.integers(0, 256, (shape[0], 144), dtype=np.uint8), raw_dtype=t)
        else:
            w.add_tensor(name, gguf.quants.quantize(data, t), raw_dtype=t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_ranges_match_gguf_py(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    _write_model(path)
    reader = gguf.GGUFReader(str(path))
    want = sorted((int(t.data_offset), int(t.n_bytes), int(t.tensor_type), int(t.shape[0]), int(t.shape[1]))
                  for t in reader.tensors
                  if int(t.tensor_type) in BLOCKS and len(t.shape) == 2 and int(t.shape[1]) >= 4)
    got = [(r.offset, r.size, r.type, r.n_cols, r.n_rows) for r in layout.ranges(path)]
    assert got == want
    assert [r[2] for r in got] == [2, 6, 8, 7]  # a, b, c, d: not the 1-D, F16, 3-row or K-quant tensors
    assert layout.ranges(path, layout.GGUF) == []
    # from the header alone: the first bytes up to the tensor data
    head = path.read_bytes()[:got[0][0]]
    assert [(r.offset, r.size) for r in layout.ranges_in(head, path.stat().st_size)] == [g[:2] for g in got]


def test_ranges_of_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    _write_model(path)
    data = path.read_bytes()
    with pytest.raises(DteError, match="does not parse"):
        layout.ranges_in(data[:40], len(data))                  # header cut short
    with pytest.raises(DteError, match="does not parse"):
        layout.ranges_in(data, len(data) - 100)                 # the last tensor runs past the file's end


RSS_PROBE = r"""
import sys
from pathlib import Path
from dte_build.engine import Engine

def rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise SystemExit("no VmRSS")

path = sys.argv[1]
Engine(path, n_ctx=8, threads=1).close()  # the library built and loaded once: measure the open alone
before = rss()
e = Engine(path, n_ctx=8, threads=1)
ids = e.tokenize("Hello")
e.eval(ids)
print(rss() - before)
"""


def test_hosted_open_repacks_a_private_copy_within_the_rss_budget(smollm2_path: Path, tmp_path: Path) -> None:
    """Opening a plain GGUF repacks its laid-out matrices (SmolLM2: all Q4_1, token_embd included) in the hosted
    library's own copy of the file: the file keeps its bytes, and the process grows by at most file + KV cache +
    64 MiB (issue 13's budget; the weights are held once)."""
    import hashlib
    import os
    import subprocess
    import sys

    from dte_build.image.model_check import context_bytes

    model = tmp_path / "m.gguf"
    model.write_bytes(smollm2_path.read_bytes())
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    assert sum(r.size for r in layout.ranges(model)) > model.stat().st_size // 2
    proc = subprocess.run([sys.executable, "-c", RSS_PROBE, str(model)], capture_output=True, text=True,
                          timeout=300, env={**os.environ})
    assert proc.returncode == 0, proc.stderr[-2000:]
    grown = int(proc.stdout.split()[-1])
    kv, _ = context_bytes(model, 8)
    assert grown <= model.stat().st_size + kv + 64 * 2**20, grown
    assert hashlib.sha256(model.read_bytes()).hexdigest() == digest


@pytest.mark.parametrize("type_id", sorted(BLOCKS))
def test_row_reads_from_groups(type_id: int) -> None:
    """dte_layout_dequantize_row (the embedding lookup) on laid-out bytes gives each row exactly as gguf-py's
    dequantization of the plain row (gguf.quants: numpy float32, the same products as ggml's reference)."""
    import ctypes

    lib = layout._library()
    fn = lib.dte_layout_dequantize_row
    fn.restype = None
    fn.argtypes = [ctypes.c_uint32, ctypes.c_uint32, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,
                   ctypes.POINTER(ctypes.c_float)]
    n_cols, n_rows = 96, 11
    qtype = gguf.GGMLQuantizationType(type_id)
    plain = gguf.quants.quantize(np.random.default_rng(type_id).standard_normal((n_rows, n_cols)).astype(np.float32),
                                 qtype)
    laid = np.frombuffer(layout.pack(type_id, n_cols, n_rows, plain.tobytes()), np.uint8)
    want = gguf.quants.dequantize(plain, qtype)
    for row in range(n_rows):
        out = np.zeros(n_cols, np.float32)
        fn(layout.ROWS4, type_id, n_cols, n_rows, laid.ctypes.data, row,
           out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
        np.testing.assert_array_equal(out, want[row], err_msg=str(row))
