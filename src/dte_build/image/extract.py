"""`dte inspect IMAGE --extract-gguf OUT.gguf`: the model's GGUF file back out of an image's weights partition,
byte-identical to the file `dte build` was given: the laid-out tensors unpacked (engine/layout.c, the exact inverse
of the pack the build ran), the SHA-256 of the result checked against the manifest's (the model's identity), and
the file written atomically (temporary file beside OUT, fsync, rename)."""

from __future__ import annotations

import hashlib
import mmap
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..console import progress
from ..errors import DteError
from . import gpt
from .weights import laid_out_tensors_in, layout_id, pieces, write_all


@dataclass(frozen=True)
class Extracted:
    path: Path
    size: int
    sha256: str
    layout: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "size": self.size, "sha256": self.sha256, "layout": self.layout}


def extract_gguf(image: Path, manifest: dict[str, Any], table: gpt.GptTable, out: Path) -> Extracted:
    """Write the GGUF held by `image` (its checked `manifest` and GPT `table`) to `out`."""
    model = manifest.get("model")
    part = next((p for p in table.partitions if p.type_guid == gpt.WEIGHTS_TYPE), None)
    if not model or part is None:
        raise DteError(f"{image} carries no model", "build it with --model MODEL.gguf")
    if model["size"] > part.sectors * table.sector_size:
        raise DteError(f"{image}: the manifest's {model['size']}-byte model is larger than its partition")
    out = Path(out)
    if out.is_dir() or not out.parent.is_dir():
        raise DteError(f"cannot write {out}: give a file name in an existing directory")
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.tmp-")
    try:
        with progress(f"extracting {out.name}", model["size"]) as bar:
            def put(piece: memoryview, at: int) -> None:
                write_all(fd, [piece], at)
                bar.advance(len(piece))

            sha = gguf_sha256(image, part.first_lba * table.sector_size, model["size"], model["layout"], put)
        if sha != model["sha256"]:
            raise DteError(f"{image}: the extracted GGUF's SHA-256 {sha[:16]}… differs from the manifest's "
                           f"{model['sha256'][:16]}… (damaged weights: `dte inspect {image}` names the chunks)")
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, out)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise
    return Extracted(out, model["size"], sha, model["layout"])


def gguf_sha256(path: Path, start: int, size: int, layout: str,
                sink: Callable[[memoryview, int], None] | None = None) -> str:
    """SHA-256 of the GGUF file that bytes [start, start + size) of `path` hold in `layout` (the layout undone
    tensor piece by tensor piece); `sink(piece, offset)` also gets each piece of the GGUF, in order."""
    from .. import layout as lay

    lid = layout_id(layout)
    with open(path, "rb") as f:
        base = start - start % mmap.ALLOCATIONGRANULARITY
        mapped = mmap.mmap(f.fileno(), size + start - base, offset=base, access=mmap.ACCESS_COPY)
    try:
        view = memoryview(mapped)[start - base:]
        try:
            tensors = laid_out_tensors_in(view, size, layout)
        except DteError as exc:
            raise DteError(f"{path}: the weights partition does not hold a GGUF ({exc})") from None
        sha = hashlib.sha256()
        for p in pieces(size, tensors):
            piece = view[p.start:p.end]
            if p.tensor is not None:
                t = p.tensor
                piece = memoryview(lay.unpack(t.type, t.n_cols, (p.end - p.start) // (t.size // t.n_rows), piece,
                                              layout=lid))
            sha.update(piece)
            if sink is not None:
                sink(piece, p.start)
        del view, piece
        return sha.hexdigest()
    finally:
        try:
            mapped.close()
        except BufferError:  # a view still held by an exception's traceback: unmapped when that goes
            pass
