"""`dte inspect IMAGE --extract-gguf OUT.gguf`: the model's GGUF file back out of an image's weights partition,
byte-identical to the file `dte build` was given: the laid-out tensors unpacked (engine/layout.c, the exact inverse
of the pack the build ran), the SHA-256 of the result checked against the manifest's (the model's identity), and
the file written atomically (temporary file beside OUT, fsync, rename)."""

from __future__ import annotations

import hashlib
import mmap
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..console import progress
from ..errors import DteError
from . import gpt
from .weights import laid_out_tensors_in, layout_id, pieces


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
    size, layout = model["size"], model["layout"]
    start = part.first_lba * table.sector_size
    if size > part.sectors * table.sector_size:
        raise DteError(f"{image}: the manifest's {size}-byte model is larger than its partition")
    out = Path(out)
    if out.is_dir() or not out.parent.is_dir():
        raise DteError(f"cannot write {out}: give a file name in an existing directory")
    lid = layout_id(layout)
    with open(image, "rb") as f:
        base = start - start % mmap.ALLOCATIONGRANULARITY
        mapped = mmap.mmap(f.fileno(), size + start - base, offset=base, access=mmap.ACCESS_COPY)
    try:
        view = memoryview(mapped)[start - base:]
        try:
            tensors = laid_out_tensors_in(view, size, layout)
        except DteError as exc:
            raise DteError(f"{image}: the weights partition does not hold a GGUF ({exc})") from None
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.tmp-")
        try:
            sha = _unpack_to(fd, view, size, tensors, lid, out.name)
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
        finally:
            del view
    finally:
        try:
            mapped.close()
        except BufferError:  # a view still held by an exception's traceback: unmapped when that goes
            pass
    return Extracted(out, size, sha, layout)


def _unpack_to(fd: int, view: memoryview, size: int, tensors: list[Any], lid: int, name: str) -> str:
    from .. import layout as lay

    sha = hashlib.sha256()
    with progress(f"extracting {name}", size) as bar:
        for p in pieces(size, tensors):
            part = view[p.start:p.end]
            if p.tensor is not None:
                t = p.tensor
                part = memoryview(lay.unpack(t.type, t.n_cols, (p.end - p.start) // (t.size // t.n_rows), part,
                                             layout=lid))
            sha.update(part)
            done = 0
            while done < len(part):
                done += os.pwrite(fd, part[done:], p.start + done)
            bar.advance(p.end - p.start)
    return sha.hexdigest()
