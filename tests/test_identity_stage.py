"""The identity sampler stage (docs/identity.md): the C stage (engine/identity.c, through the hosted library)
against a numpy implementation of the documented formula, and its effect on generation."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dte_build.cli import main
from dte_build.engine import Engine, identity_apply
from dte_build.paths import MODELS_DIR
from dte_build.persona import DEFAULT_PERSONA, load_persona

MODEL = MODELS_DIR / "dte-tiny-q8_0.gguf"
needs_model = pytest.mark.skipif(not MODEL.is_file(), reason=f"{MODEL.name} not present")
GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def numpy_identity(digest: bytes, strength: float, logits: np.ndarray) -> np.ndarray:
    """docs/identity.md, written from the text of the formula (float32 throughout, two roundings, no FMA)."""
    seed = np.uint64(int.from_bytes(digest[0:8], "little"))
    resonance = np.float32(0.5) + np.float32(int.from_bytes(digest[8:10], "little")) / np.float32(131072)
    weight = np.float32(strength) * resonance
    with np.errstate(over="ignore"):
        z = seed ^ (np.arange(len(logits), dtype=np.uint64) * GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    echo = ((z >> np.uint64(40)).astype(np.float32) - np.float32(2**23)) / np.float32(2**23)
    return (logits.astype(np.float32) + (weight * echo).astype(np.float32)).astype(np.float32)


@pytest.mark.parametrize("strength", [0.25, 1.0, 3.7])
@pytest.mark.parametrize("name", [b"deep tree echo", b"another persona"])
def test_c_stage_equals_the_numpy_formula_bit_for_bit(strength: float, name: bytes) -> None:
    digest = hashlib.sha256(name).digest()
    rng = np.random.default_rng(7)
    logits = (rng.standard_normal(5000) * 4).astype(np.float32)
    got = np.array(identity_apply(digest, strength, logits.tolist()), dtype=np.float32)
    want = numpy_identity(digest, strength, logits)
    assert np.array_equal(got, want)
    assert not np.array_equal(got, logits)
    bias = (want - logits).astype(np.float64)
    assert np.all(np.abs(bias) <= strength * 1.0 + 1e-3)       # |weight * echo| < strength
    assert abs(bias.mean()) < 0.05 * strength                   # echo is centred


def test_stage_at_strength_zero_is_the_identity() -> None:
    logits = np.linspace(-5, 5, 1000, dtype=np.float32)
    assert np.array_equal(np.array(identity_apply(bytes(32), 0.0, logits.tolist()), dtype=np.float32), logits)


def _generate(*extra: str) -> dict:
    result = CliRunner().invoke(main, ["generate", "-m", str(MODEL), "-p", "Deep Tree Echo speaks", "-n", "8",
                                       "--json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@needs_model
@pytest.mark.parametrize("sampling", [[], ["--temp", "1.2", "--top-k", "0", "--top-p", "1", "--seed", "5"]])
def test_strength_zero_gives_the_same_tokens(sampling: list[str]) -> None:
    plain = _generate(*sampling)
    assert _generate(*sampling, "--persona", str(DEFAULT_PERSONA), "--identity-strength", "0")["ids"] == plain["ids"]


@needs_model
def test_greedy_generation_follows_the_numpy_stage_on_the_engines_logits() -> None:
    digest = load_persona(DEFAULT_PERSONA).digest
    strength = 6.0
    with Engine(MODEL) as engine:
        prompt = engine.tokenize("Deep Tree Echo speaks")
        engine.set_identity(digest, strength)
        got = engine.generate(prompt, n_predict=8, temp=0.0).ids
        engine.reset()
        want, plain = [], []
        logits = engine.eval_numpy(prompt)
        for _ in range(8):
            plain.append(int(np.argmax(logits)))
            token = int(np.argmax(numpy_identity(digest, strength, logits)))
            want.append(token)
            logits = engine.eval_numpy([token])
    assert got == want[:len(got)] and len(got) >= 1
    assert want != plain       # at this strength the identity visibly steers the greedy choice
