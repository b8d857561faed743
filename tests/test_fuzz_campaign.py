"""Issue 15's hostile-input campaign for images and models, CI-sized (scripts/fuzz_images.py; the longer run is
recorded in docs/verification.md): hostile GGUFs through the build-time check and `dte inspect MODEL.gguf` under
the ASan/UBSan build of the hosted library, hostile images through `dte inspect` and `dte verify`. Zero crashes,
hangs, tracebacks and wrong acceptances; most mutations refused or reported."""

from __future__ import annotations

import sys

import pytest

from dte_build import engine
from dte_build.errors import DteError
from dte_build.paths import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import fuzz_images  # noqa: E402

BAD = ("crashes", "hangs", "tracebacks", "wrong_acceptances")


def test_hostile_ggufs_through_build_and_inspect_under_asan() -> None:
    try:
        engine.build_host_library(sanitize=True)
        engine.asan_runtime()
    except DteError as exc:
        pytest.skip(f"sanitizer build unavailable: {exc}")
    counts = fuzz_images.run_gguf_child(600, seed=11, asan=True)
    assert {k: counts.get(k) for k in BAD} == dict.fromkeys(BAD, 0), counts
    assert counts["inputs"] == 600 and counts["reference_self_check"] == 1
    assert counts["refused"] > 300  # mutations are refused, not waved through


@pytest.mark.slow
def test_hostile_images_through_inspect_and_verify() -> None:
    counts = fuzz_images.image_campaign(300, seed=12)
    assert {k: counts.get(k) for k in BAD if k != "crashes"} == dict.fromkeys(BAD[1:], 0), counts
    assert counts["inputs"] == 300
    assert counts.get("refused", 0) + counts.get("reported", 0) > 150
