"""The engine has one interface (firmware/engine/engine.h): boot code and the hosted library reach the engine only
through it and the loop/sampler headers built on it, never through engine-internal headers (the GGUF parser, the
model view, the tokenizer, the kernels). Fails when a caller includes an internal header or names an internal type."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dte_build.paths import FIRMWARE_DIR

PUBLIC = {"engine.h", "errors.h", "generate.h", "sampler.h", "identity.h", "chat.h", "conversation.h",
          "layout.h"}  # layout.h: the weight layouts (engine.h's weights_layout) and their transform, for dte build
CALLERS = ["boot", "hosted", "net", "drivers"]
INCLUDE = re.compile(r'#\s*include\s+"(?:\.\./)?engine/([^"]+)"')
INTERNAL_TYPES = re.compile(r"\b(dte_gguf\w*|dte_model\w*|dte_tokenizer|dte_weight\b|dte_layer|dte_hparams|"
                            r"dte_llama\w*|dte_arch)\b")


# The hosted GGUF describer (`dte inspect`, the build's model check) reads container metadata (keys, tensor types)
# of files the engine may refuse: the GGUF parser and the type table are its subject, not engine internals.
# The hosted layout lister (dte build) reads the tensor infos of the file it lays out the same way.
EXEMPT = {"hosted/dte_host_model.c": {"gguf.h", "quants.h"}, "hosted/dte_host_layout.c": {"gguf.h"}}


def caller_files() -> list[Path]:
    return sorted(p for d in CALLERS for p in (FIRMWARE_DIR / d).glob("*.[ch]"))


@pytest.mark.parametrize("path", caller_files(), ids=lambda p: str(p.relative_to(FIRMWARE_DIR)))
def test_callers_include_only_the_engine_interface(path: Path) -> None:
    text = path.read_text()
    rel = str(path.relative_to(FIRMWARE_DIR))
    internal = sorted(set(INCLUDE.findall(text)) - PUBLIC - EXEMPT.get(rel, set()))
    assert not internal, f"{path.name} includes engine-internal headers {internal}; use engine/engine.h"
    if rel in EXEMPT:
        return
    names = sorted(set(INTERNAL_TYPES.findall(text)))
    assert not names, f"{path.name} names engine-internal types {names}"


def test_the_check_can_fail(tmp_path: Path) -> None:
    """The pattern catches both include spellings the tree uses."""
    assert INCLUDE.findall('#include "engine/gguf.h"\n#include "../engine/model.h"') == ["gguf.h", "model.h"]


def test_platform_interface_lives_outside_the_engine() -> None:
    assert (FIRMWARE_DIR / "runtime" / "platform.h").is_file()
    assert not (FIRMWARE_DIR / "engine" / "platform.h").exists()
