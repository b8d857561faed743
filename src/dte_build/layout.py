"""Weight layouts (docs/kernels.md "Weight layouts"), through the engine's own C (firmware/engine/layout.c,
exported by the hosted library; firmware/hosted/dte_host_layout.h): which tensors of a GGUF a layout transforms
(`ranges`, parsed by the engine's GGUF parser) and the transform itself (`pack`, GGUF -> layout; `unpack`, back),
on buffers without copies, so `dte build` can write a weights partition the kernels read as it is and
`dte inspect --extract-gguf` can give the GGUF back byte for byte."""

from __future__ import annotations

import ctypes
import mmap
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from .errors import DteError

GGUF = 0
"""DTE_LAYOUT_GGUF: the tensor bytes exactly as in the GGUF."""
ROWS4 = 1
"""DTE_LAYOUT_ROWS4: the legacy 32-element types' matrices as groups of 4 rows, blocks side by side, fields
grouped."""
NAMES = {GGUF: "gguf", ROWS4: "rows4"}
GROUP_ROWS = 4

Buffer = Union[bytes, bytearray, memoryview, mmap.mmap]


class _Range(ctypes.Structure):  # engine/layout.h dte_layout_range
    _fields_ = [("offset", ctypes.c_uint64), ("size", ctypes.c_uint64), ("type", ctypes.c_uint32),
                ("n_cols", ctypes.c_int64), ("n_rows", ctypes.c_int64)]


@dataclass(frozen=True)
class Range:
    """A tensor the layout transforms: its bytes [offset, offset + size) in the file."""

    offset: int
    size: int
    type: int          # ggml type id
    n_cols: int
    n_rows: int

    @property
    def row_bytes(self) -> int:
        return self.size // self.n_rows

    @property
    def group_bytes(self) -> int:
        """Bytes of one group of rows: split a tensor at multiples of this to transform it in pieces."""
        return GROUP_ROWS * self.row_bytes


_bound: list[ctypes.CDLL] = []


def _library() -> ctypes.CDLL:
    if not _bound:
        from .engine import load_library

        lib = load_library()
        c = ctypes
        lib.dte_layout_ranges.restype = c.c_int64
        lib.dte_layout_ranges.argtypes = [c.c_void_p, c.c_uint64, c.c_uint64, c.c_uint32, c.POINTER(_Range),
                                          c.c_int64]
        for name in ("dte_layout_pack", "dte_layout_unpack"):
            fn = getattr(lib, name)
            fn.restype = c.c_int
            fn.argtypes = [c.c_uint32, c.c_uint32, c.c_int64, c.c_int64, c.c_void_p, c.c_void_p]
        lib.dte_layout_applies.restype = c.c_int
        lib.dte_layout_applies.argtypes = [c.c_uint32, c.c_uint32, c.c_uint32, c.c_int64]
        lib.dte_type_row_bytes.restype = c.c_int64
        lib.dte_type_row_bytes.argtypes = [c.c_uint32, c.c_int64]
        lib.dte_err_name.restype = c.c_char_p
        lib.dte_err_name.argtypes = [c.c_int]
        _bound.append(lib)
    return _bound[0]


class _Pinned:
    """The address of a buffer's bytes for one C call, without copying: bytes directly, writable buffers through
    ctypes.from_buffer (a read-only memoryview other than bytes is copied once)."""

    def __init__(self, buf: Buffer, writable: bool = False) -> None:
        self.keep: object
        if isinstance(buf, bytes):
            if writable:
                raise DteError("the layout's output buffer must be writable (bytearray, memoryview or mmap)")
            self.keep = buf
            self.address = ctypes.cast(ctypes.c_char_p(buf), ctypes.c_void_p).value or 0
            self.size = len(buf)
            return
        view = memoryview(buf).cast("B")
        if view.readonly:
            if writable:
                raise DteError("the layout's output buffer must be writable (bytearray, memoryview or mmap)")
            view = memoryview(bytearray(view))
        self.size = len(view)
        arr = (ctypes.c_char * self.size).from_buffer(view) if self.size else None
        self.keep = (view, arr)
        self.address = ctypes.addressof(arr) if arr is not None else 0


def applies(layout: int, type_id: int, n_dims: int, n_rows: int) -> bool:
    """Whether `layout` stores a tensor of this ggml type and shape differently from the GGUF."""
    return bool(_library().dte_layout_applies(layout, type_id, n_dims, n_rows))


def ranges_in(header: Buffer, file_size: int, layout: int = ROWS4) -> list[Range]:
    """The tensors `layout` transforms, in file order, from a GGUF's first bytes (`header`: at least the whole
    header and tensor infos) and its total size."""
    lib = _library()
    src = _Pinned(header)
    cap = 256
    while True:
        out = (_Range * cap)()
        n = lib.dte_layout_ranges(src.address, src.size, file_size, layout, out, cap)
        if n < 0:
            name = (lib.dte_err_name(int(n)) or b"?").decode()
            raise DteError(f"the GGUF does not parse ({name})", "`dte inspect MODEL.gguf` says why")
        if n <= cap:
            return [Range(r.offset, r.size, r.type, r.n_cols, r.n_rows) for r in out[:n]]
        cap = int(n)


def ranges(path: str | os.PathLike[str], layout: int = ROWS4) -> list[Range]:
    """The tensors `layout` transforms in the GGUF file at `path`, in file order."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise DteError(f"model {path} is empty (0 bytes)", "pass a GGUF file")
            with mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) as mapped:  # private: nothing written
                return ranges_in(mapped, size, layout)
    except OSError as exc:
        raise DteError(f"cannot read model {Path(path)}: {exc.strerror}") from None


def _transform(fn_name: str, type_id: int, n_cols: int, n_rows: int, src: Buffer, dst: Buffer | None,
               layout: int) -> Buffer:
    lib = _library()
    row = lib.dte_type_row_bytes(type_id, n_cols)
    if row < 0 or n_rows < 0:
        raise DteError(f"layout: type {type_id} with {n_cols} columns and {n_rows} rows has no whole blocks")
    need = row * n_rows
    s = _Pinned(src)
    out: Buffer = dst if dst is not None else bytearray(need)
    d = _Pinned(out, writable=True)
    if s.size < need or d.size < need:
        raise DteError(f"layout: {n_rows} rows of {row} bytes need {need} bytes; input {s.size}, output {d.size}")
    getattr(lib, fn_name)(layout, type_id, n_cols, n_rows, s.address, d.address)
    return out


def pack(type_id: int, n_cols: int, n_rows: int, src: Buffer, dst: Buffer | None = None,
         layout: int = ROWS4) -> Buffer:
    """GGUF bytes of n_rows rows -> `layout` bytes, into dst (writable, no overlap with src) or a new bytearray.
    A piece of a tensor is transformed alone when it starts at a group boundary (Range.group_bytes)."""
    return _transform("dte_layout_pack", type_id, n_cols, n_rows, src, dst, layout)


def unpack(type_id: int, n_cols: int, n_rows: int, src: Buffer, dst: Buffer | None = None,
           layout: int = ROWS4) -> Buffer:
    """`layout` bytes -> the GGUF bytes (pack's inverse, byte for byte)."""
    return _transform("dte_layout_unpack", type_id, n_cols, n_rows, src, dst, layout)
