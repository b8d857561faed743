"""The image manifest: `/DTE/MANIFEST.JSN` (JSON, for tools and people) and `/DTE/WEIGHTS.MAN` (binary, for the
firmware), as specified in docs/design.md "Manifest".

The model is hashed in one streaming pass (SHA-256 of the whole file and CRC32C/Castagnoli of each 1 MiB chunk);
it is never read into memory whole.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import crc32c

from ..errors import DteError

FORMAT = "dte-manifest/1"
CHUNK_SIZE = 1024 * 1024
FIRMWARE_PATH = "EFI/BOOT/BOOTX64.EFI"
MANIFEST_PATH = "DTE/MANIFEST.JSN"
WEIGHTS_MAN_PATH = "DTE/WEIGHTS.MAN"
WEIGHTS_PARTITION = 2
WEIGHTS_MAGIC = b"DTEWMAN2"
# magic, model_size, weights_lba, chunk_size, chunk_count, sha256 (of the GGUF), layout (DTE_LAYOUT_*), reserved 0
_WEIGHTS_HEAD = struct.Struct("<8sQQII32sII")
LAYOUT_NAMES = ("gguf", "rows4")  # index: the engine's DTE_LAYOUT_* id (engine/layout.h)
_READ_SIZE = 16 * CHUNK_SIZE


@dataclass(frozen=True)
class ModelDigest:
    size: int
    sha256: str
    chunk_size: int
    crc32c: tuple[int, ...]


def digest_model(path: Path, *, chunk_size: int = CHUNK_SIZE,
                 on_bytes: Callable[[int], None] | None = None) -> ModelDigest:
    """SHA-256 of the file and CRC32C of each `chunk_size` chunk (last one short), in one streaming pass."""
    if _READ_SIZE % chunk_size:
        raise DteError(f"chunk size {chunk_size} must divide {_READ_SIZE}")
    sha = hashlib.sha256()
    crcs: list[int] = []
    buf = bytearray(_READ_SIZE)
    view = memoryview(buf)
    total = 0
    with open(path, "rb", buffering=0) as f:
        while n := _fill(f, view):
            data = view[:n]
            sha.update(data)
            crcs.extend(crc32c.crc32c(data[at:at + chunk_size]) for at in range(0, n, chunk_size))
            total += n
            if on_bytes:
                on_bytes(n)
    return ModelDigest(total, sha.hexdigest(), chunk_size, tuple(crcs))


def _fill(f: Any, view: memoryview) -> int:
    """Read until `view` is full or the file ends, so chunks stay aligned even after a short read."""
    got = 0
    while got < len(view) and (n := f.readinto(view[got:])):
        got += n
    return got


def firmware_entry(efi: bytes) -> dict[str, Any]:
    return {"path": FIRMWARE_PATH, "size": len(efi), "sha256": hashlib.sha256(efi).hexdigest()}


def make_manifest(*, board: str, build_id: str, source_date_epoch: int, efi: bytes, weights_lba: int,
                  sector_size: int, model_name: str | None = None, architecture: str | None = None,
                  tensor_count: int | None = None, digest: ModelDigest | None = None,
                  persona: dict[str, Any] | None = None, layout: str = "gguf") -> dict[str, Any]:
    """The manifest dict in the design's key order; `model` is None when the image carries no weights.
    `persona`: {"name", "sha256", "strength"} of the identity compiled into the firmware (docs/identity.md).
    `layout`: how the weights partition stores the tensors (LAYOUT_NAMES); `sha256` is always the GGUF's, the
    CRC32C list the bytes on disk."""
    if not re.fullmatch(r"[0-9a-f]{16}", build_id):
        raise DteError(f"build id '{build_id}' must be 16 lowercase hex characters")
    model = None
    if digest is not None:
        model = {"name": model_name, "size": digest.size, "sha256": digest.sha256, "architecture": architecture,
                 "tensor_count": tensor_count, "layout": layout, "chunk_size": digest.chunk_size,
                 "crc32c": list(digest.crc32c)}
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "board": board,
        "build_id": build_id,
        "source_date_epoch": int(source_date_epoch),
        "firmware": firmware_entry(efi),
        "weights": {"lba": weights_lba, "sector_size": sector_size,
                    "partition": WEIGHTS_PARTITION if model else None},
        "model": model,
    }
    if persona is not None:
        manifest["persona"] = persona
    return manifest


def manifest_json(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2) + "\n").encode()


_HEX64 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_U64 = {"type": "integer", "minimum": 0, "maximum": 2**64 - 1}
# JSON Schema (draft 2020-12) of MANIFEST.JSN as make_manifest writes it (docs/design.md "Manifest").
MANIFEST_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["format", "board", "build_id", "source_date_epoch", "firmware", "weights", "model"],
    "properties": {
        "format": {"const": FORMAT},
        "board": {"type": "string", "minLength": 1, "maxLength": 256},
        "build_id": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
        "source_date_epoch": {"type": "integer"},
        "firmware": {"type": "object", "required": ["path", "size", "sha256"], "properties": {
            "path": {"type": "string"}, "size": _U64, "sha256": _HEX64}},
        "weights": {"type": "object", "required": ["lba", "sector_size", "partition"], "properties": {
            "lba": _U64, "sector_size": {"enum": [512, 4096]},
            "partition": {"oneOf": [{"type": "null"}, {"type": "integer", "minimum": 1, "maximum": 128}]}}},
        "model": {"oneOf": [{"type": "null"}, {
            "type": "object", "required": ["name", "size", "sha256", "layout", "chunk_size", "crc32c"],
            "properties": {
                "name": {"type": ["string", "null"]}, "size": {**_U64, "minimum": 1}, "sha256": _HEX64,
                "architecture": {"type": ["string", "null"]},
                "tensor_count": {"oneOf": [{"type": "null"}, _U64]},
                "layout": {"enum": list(LAYOUT_NAMES)},
                "chunk_size": {"type": "integer", "minimum": 1, "maximum": 2**32 - 1},
                "crc32c": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}}}}]},
        "persona": {"type": "object", "required": ["name", "sha256", "strength"], "properties": {
            "name": {"type": "string"}, "sha256": _HEX64, "strength": {"type": "number"}}},
    },
}


def parse_manifest_json(data: bytes) -> dict[str, Any]:
    """Parse MANIFEST.JSN and check it against MANIFEST_SCHEMA (every field other parts read, with its type),
    then that the CRC32C list covers the model."""
    import jsonschema

    try:
        manifest = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise DteError(f"MANIFEST.JSN is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DteError(f"MANIFEST.JSN is not a {FORMAT} manifest")
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(MANIFEST_SCHEMA).iter_errors(manifest))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        raise DteError(f"MANIFEST.JSN: {where}: {error.message[:200]}".replace("\n", " "))
    model = manifest["model"]
    if model is not None:
        chunks = -(-model["size"] // model["chunk_size"])
        if len(model["crc32c"]) != chunks:
            raise DteError(f"MANIFEST.JSN lists {len(model['crc32c'])} CRC32C chunks, the model size needs {chunks}")
    return manifest


@dataclass(frozen=True)
class WeightsManifest:
    """The binary manifest the firmware reads (model_size 0 and no chunks when there is no model)."""

    model_size: int
    weights_lba: int
    chunk_size: int
    sha256: bytes
    crc32c: tuple[int, ...]
    layout: int = 0

    @property
    def layout_name(self) -> str:
        return LAYOUT_NAMES[self.layout]

    @property
    def chunk_count(self) -> int:
        return len(self.crc32c)


def weights_man(weights_lba: int, digest: ModelDigest | None, layout: int = 0) -> bytes:
    """`/DTE/WEIGHTS.MAN`: magic "DTEWMAN2", u64 model_size, u64 weights_lba, u32 chunk_size, u32 chunk_count,
    sha256[32] (of the GGUF), u32 layout (DTE_LAYOUT_*), u32 reserved (0), u32 crc32c[chunk_count] (of the
    bytes on disk), all little-endian."""
    if digest is None:
        return _WEIGHTS_HEAD.pack(WEIGHTS_MAGIC, 0, weights_lba, CHUNK_SIZE, 0, bytes(32), 0, 0)
    head = _WEIGHTS_HEAD.pack(WEIGHTS_MAGIC, digest.size, weights_lba, digest.chunk_size, len(digest.crc32c),
                              bytes.fromhex(digest.sha256), layout, 0)
    return head + struct.pack(f"<{len(digest.crc32c)}I", *digest.crc32c)


def parse_weights_man(data: bytes) -> WeightsManifest:
    if len(data) < _WEIGHTS_HEAD.size:
        raise DteError(f"WEIGHTS.MAN is {len(data)} bytes, shorter than its {_WEIGHTS_HEAD.size}-byte header")
    magic, size, lba, chunk, count, sha, layout, reserved = _WEIGHTS_HEAD.unpack_from(data)
    if magic != WEIGHTS_MAGIC:
        raise DteError(f"WEIGHTS.MAN has magic {magic!r}, expected {WEIGHTS_MAGIC!r}",
                       "rebuild the image with this dte (dte build)")
    if reserved:
        raise DteError(f"WEIGHTS.MAN's reserved field is {reserved:#x}, not 0 (damaged, or from a newer dte)")
    if layout >= len(LAYOUT_NAMES):
        raise DteError(f"WEIGHTS.MAN names weights layout {layout}, this dte knows 0..{len(LAYOUT_NAMES) - 1}")
    if len(data) != _WEIGHTS_HEAD.size + 4 * count:
        raise DteError(f"WEIGHTS.MAN is {len(data)} bytes, {count} chunks need {_WEIGHTS_HEAD.size + 4 * count}")
    if chunk == 0 or count != -(-size // chunk):
        raise DteError(f"WEIGHTS.MAN: {count} chunks of {chunk} bytes do not cover a {size}-byte model")
    crcs = struct.unpack_from(f"<{count}I", data, _WEIGHTS_HEAD.size)
    return WeightsManifest(size, lba, chunk, sha, crcs, layout)
