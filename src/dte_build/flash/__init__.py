"""`dte flash` / `dte verify`: write a dte image (or an image plan) to a disk safely, fast, and prove it.

Library entry points (usable without the CLI):
    image_source(path) -> Source                 an image file made by `dte build`
    plan_source(plan) -> Source                  an `ImagePlan`, streamed without materialising the image
    flash(source, target, ...) -> FlashReport    checks, writes (GPT last), flushes, reads back
    verify(source, target) -> VerifyResult       the read-back alone: ok / incomplete / mismatch at offset N
    inspect_target(path, image_size) -> Target   the safety checks alone
"""

from __future__ import annotations

from pathlib import Path

from .source import Source, image_source, plan_source
from .target import System, Target, inspect_target
from .verify import VerifyResult, verify_chunks
from .writer import FlashReport, FlashVerifyError, flash


def verify(source: Source, target: str | Path, *, system: System | None = None) -> VerifyResult:
    """Read the whole image range back from `target` and compare it with `source`.

    The target gets the same safety checks as for a flash except the size/busy ones that only matter for
    writing are still applied (a smaller target cannot hold the image either).
    """
    t = inspect_target(target, source.size, source.sector_size, system=system)
    if t.kind == "file" and not t.exists:
        from ..errors import DteError
        raise DteError(f"target {t.path} does not exist (or is empty)", "flash it first with `dte flash`")
    return verify_chunks(source, t.path, source.chunks())


__all__ = ["FlashReport", "FlashVerifyError", "Source", "System", "Target", "VerifyResult", "flash",
           "image_source", "inspect_target", "plan_source", "verify"]
