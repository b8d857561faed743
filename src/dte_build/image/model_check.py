"""GGUF validation with gguf-py, before anything is written.

`open_gguf` wraps gguf-py's GGUFReader with bounds checks (every header field and every tensor's data must lie
inside the file) and can read a GGUF that starts at an offset inside a bigger file (a disk image's weights
partition). `check_model` turns any problem into one DteError line.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader

from ..board import Board
from ..console import warn
from ..errors import DteError

MIB = 1024 * 1024
SUPPORTED_ARCHITECTURES = ("llama",)
# The tensor types firmware/engine/quants.h accepts as weights (ggml type ids).
SUPPORTED_TYPES = frozenset({
    GGMLQuantizationType.F32, GGMLQuantizationType.F16, GGMLQuantizationType.BF16,
    GGMLQuantizationType.Q4_0, GGMLQuantizationType.Q4_1, GGMLQuantizationType.Q5_0, GGMLQuantizationType.Q5_1,
    GGMLQuantizationType.Q8_0, GGMLQuantizationType.Q2_K, GGMLQuantizationType.Q3_K, GGMLQuantizationType.Q4_K,
    GGMLQuantizationType.Q5_K, GGMLQuantizationType.Q6_K,
})
SUPPORTED_VERSIONS = (2, 3)


class GgufProblem(ValueError):
    """A specific, already user-readable reason a GGUF is unusable."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    size: int
    version: int
    architecture: str
    tensor_count: int
    types: dict[str, int]
    alignment: int
    data_offset: int
    n_layer: int | None = None
    n_embd: int | None = None
    n_vocab: int | None = None
    context_length: int | None = None
    metadata_keys: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _BoundedReader(GGUFReader):
    """GGUFReader over bytes [start, start+length) of a file, refusing reads past that window."""

    def __init__(self, path: str | os.PathLike[str], start: int = 0, length: int | None = None) -> None:
        self._window = (start, length)
        super().__init__(path, "r")

    @property  # type: ignore[override]
    def data(self) -> np.memmap:
        return self._data

    @data.setter
    def data(self, value: np.memmap) -> None:
        start, length = self._window
        end = len(value) if length is None else start + length
        if end > len(value):
            raise GgufProblem(f"the GGUF would end at byte {end}, past the end of the file ({len(value)} bytes)")
        self._data = value[start:end]

    def _get(self, offset: int, dtype: Any, count: int = 1, override_order: Any = None) -> Any:
        end = int(offset) + np.dtype(dtype).itemsize * int(count)
        if end > len(self._data):
            raise GgufProblem(f"header runs past the end of the file (needs byte {end}, file has "
                              f"{len(self._data)}): truncated or corrupt")
        return super()._get(offset, dtype, count, override_order)

    def _build_tensors(self, start_offs: int, fields: list[Any]) -> None:
        size = len(self._data)
        if start_offs > size:
            raise GgufProblem(f"tensor data section starts at byte {start_offs}, past the end ({size} bytes)")
        for f in fields:
            _len, name, _n_dims, dims, raw_type, rel = f.parts
            tname = bytes(name).decode("utf-8", errors="replace")
            type_id = int(raw_type[0])
            try:
                qtype = GGMLQuantizationType(type_id)
            except ValueError:
                raise GgufProblem(f"tensor '{tname}' has unknown ggml type id {type_id}") from None
            if qtype not in SUPPORTED_TYPES:
                raise GgufProblem(f"tensor '{tname}' has type {qtype.name}, which the dte engine does not support "
                                  f"(supported: {', '.join(sorted(t.name for t in SUPPORTED_TYPES))})")
            block, type_size = GGML_QUANT_SIZES[qtype]
            n_elems = int(np.prod(dims.astype(object))) if len(dims) else 1
            if n_elems % block:
                raise GgufProblem(f"tensor '{tname}' has {n_elems} elements, not a multiple of {qtype.name}'s "
                                  f"block of {block}")
            end = start_offs + int(rel[0]) + n_elems // block * type_size
            if end > size:
                raise GgufProblem(f"tensor '{tname}' data ends at byte {end}, past the end of the file ({size} "
                                  "bytes): truncated?")
        super()._build_tensors(start_offs, fields)


def open_gguf(path: str | os.PathLike[str], *, start: int = 0, length: int | None = None,
              what: str | None = None) -> GGUFReader:
    """Parse a GGUF (optionally one stored at `start` inside a bigger file) with every bound checked.

    Raises DteError with one line naming `what` (default: the file name) and the problem.
    """
    label = what or Path(path).name
    try:
        with open(path, "rb") as f:
            f.seek(start)
            head = f.read(8)
    except OSError as exc:
        raise DteError(f"cannot read model {path}: {exc.strerror}") from None
    if not head:
        raise DteError(f"model {label} is empty (0 bytes)", "pass a GGUF file")
    if head[:4] != b"GGUF":
        raise DteError(f"model {label} is not a GGUF file (starts with {head[:4].hex(' ')}, expected 'GGUF')")
    version = int.from_bytes(head[4:8], "little") if len(head) == 8 else -1
    if version not in SUPPORTED_VERSIONS:
        raise DteError(f"model {label} has GGUF version {version}; dte reads versions 2 and 3")
    try:
        return _BoundedReader(path, start, length)
    except GgufProblem as exc:
        raise DteError(f"model {label}: {exc}") from None
    except Exception as exc:  # gguf-py raises assorted types on malformed input
        raise DteError(f"model {label} is a corrupt GGUF ({type(exc).__name__}: {exc})") from None


def _scalar(reader: GGUFReader, key: str) -> Any:
    f = reader.fields.get(key)
    if f is None:
        return None
    try:
        value = f.contents()
    except Exception:  # noqa: BLE001 - a malformed value is reported as absent
        return None
    return value.item() if hasattr(value, "item") else value


def summarize(reader: GGUFReader, *, name: str, size: int) -> ModelInfo:
    """ModelInfo from a parsed reader (used by `check_model` and `dte inspect`)."""
    arch = _scalar(reader, "general.architecture")
    version = int(reader.fields["GGUF.version"].parts[0][0])
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    n_vocab = _scalar(reader, f"{arch}.vocab_size") or (len(tokens.data) if tokens is not None else None)
    types = Counter(t.tensor_type.name for t in reader.tensors)
    return ModelInfo(
        name=name, size=size, version=version, architecture=str(arch) if arch is not None else "",
        tensor_count=len(reader.tensors), types=dict(sorted(types.items())), alignment=int(reader.alignment),
        data_offset=int(reader.data_offset), n_layer=_scalar(reader, f"{arch}.block_count"),
        n_embd=_scalar(reader, f"{arch}.embedding_length"), n_vocab=n_vocab,
        context_length=_scalar(reader, f"{arch}.context_length"),
        metadata_keys=len([k for k in reader.fields if not k.startswith("GGUF.")]),
    )


def check_model(path: str | os.PathLike[str], board: Board | None = None, *, stream_weights: bool = False) -> ModelInfo:
    """Validate a GGUF for the engine (and for `board`'s weights region); one-line DteError on any problem.

    `stream_weights`: a model larger than the weights region is accepted (with a warning): the firmware keeps
    what fits resident and streams the other layers from NVMe (firmware/boot/weights_stream.h)."""
    p = Path(path)
    if not p.is_file():
        raise DteError(f"model {p} does not exist or is not a file")
    size = p.stat().st_size
    reader = open_gguf(p)
    info = summarize(reader, name=p.name, size=size)
    del reader
    if info.architecture not in SUPPORTED_ARCHITECTURES:
        found = info.architecture or "none (no general.architecture)"
        raise DteError(f"model {p.name} has architecture '{found}'; dte runs only "
                       f"{', '.join(SUPPORTED_ARCHITECTURES)}")
    if info.tensor_count == 0:
        raise DteError(f"model {p.name} has no tensors")
    if board is not None:
        region = board.region("weights")
        if size > region.size_mib * MIB and stream_weights:
            warn(f"model {p.name} is {size / MIB:.1f} MiB, board {board.name}'s weights region holds "
                 f"{region.size_mib} MiB: the firmware will stream the layers that do not fit from NVMe")
        elif size > region.size_mib * MIB:
            raise DteError(f"model {p.name} is {size / MIB:.1f} MiB but board {board.name}'s weights region holds "
                           f"{region.size_mib} MiB", "pick a smaller quantization or a bigger board, or build with "
                           "--stream-weights")
    return info
