"""`dte generate`: greedy ids equal the numpy reference's argmax chain; --json fields; one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from gguf import GGMLQuantizationType as T

from dte_build.cli import main
from model_factory import ModelSpec, make_model
from numpy_llama import NumpyLlama


def test_greedy_json_matches_numpy_reference(tmp_path: Path) -> None:
    path = make_model(tmp_path / "m.gguf", ModelSpec(wtype=T.Q8_0, n_vocab=300, n_ctx=48))
    result = CliRunner().invoke(main, ["generate", "--model", str(path), "--prompt", "a b c", "-n", "6",
                                       "--temp", "0", "--threads", "2", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) == {"schema", "prompt_ids", "ids", "text", "tok_per_s", "prompt_tok_per_s"}
    ref = NumpyLlama(path)
    logits = ref.forward(out["prompt_ids"])[-1]
    want = []
    for _ in range(len(out["ids"])):
        want.append(int(np.argmax(logits)))
        logits = ref.step(want[-1])
    assert out["prompt_ids"][0] == 1 and len(out["ids"]) >= 1
    assert out["ids"] == want
    assert out["tok_per_s"] > 0


def test_sampling_is_seeded(tmp_path: Path) -> None:
    path = make_model(tmp_path / "m.gguf", ModelSpec(n_ctx=48))
    args = ["generate", "-m", str(path), "-p", "ab", "-n", "12", "--temp", "1.5", "--json"]
    runs = [json.loads(CliRunner().invoke(main, args + ["--seed", s]).stdout)["ids"] for s in ("7", "7", "8")]
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_errors_are_one_line(tmp_path: Path) -> None:
    path = make_model(tmp_path / "m.gguf", ModelSpec(n_ctx=16))
    long = CliRunner().invoke(main, ["generate", "-m", str(path), "-p", "a b " * 40])
    assert long.exit_code != 0 and "context" in long.output and len(long.output.strip().splitlines()) == 1
    (tmp_path / "bad.gguf").write_bytes(b"GGUF" + b"\0" * 20)
    bad = CliRunner().invoke(main, ["generate", "-m", str(tmp_path / "bad.gguf"), "-p", "x"])
    assert bad.exit_code != 0 and "cannot load" in bad.output and len(bad.output.strip().splitlines()) == 1
