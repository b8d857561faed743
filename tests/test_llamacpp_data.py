"""The recorded llama.cpp reference (tests/data/llamacpp/reference.json) is consistent with the committed models.

Expected values come from independent sources: gguf-py (token pieces, special ids, context length of each GGUF),
SentencePiece (the tokenizer the models were trained with) and, when installed, llama.cpp itself.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import gguf
import pytest

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"
REFERENCE = REPO / "tests" / "data" / "llamacpp" / "reference.json"
TOKENIZER = MODELS / "dte-tiny.tokenizer.model"
REQUIRED = {"dte-tiny-f16.gguf", "dte-tiny-q8_0.gguf", "dte-tiny-q4_0.gguf", "dte-tiny-q4_k_m.gguf", "dte-tiny-q6_k.gguf"}


@pytest.fixture(scope="module")
def ref() -> dict:
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


def _vocab(path: Path) -> dict:
    r = gguf.GGUFReader(path)
    f = r.fields
    return {
        "tokens": [str(t) for t in f["tokenizer.ggml.tokens"].contents()],
        "types": list(f["tokenizer.ggml.token_type"].contents()),
        "bos": f["tokenizer.ggml.bos_token_id"].contents(),
        "eos": f["tokenizer.ggml.eos_token_id"].contents(),
        "add_bos": f["tokenizer.ggml.add_bos_token"].contents(),
        "n_ctx": f["llama.context_length"].contents(),
    }


@pytest.fixture(scope="module")
def vocab() -> dict:
    return _vocab(MODELS / "dte-tiny-f16.gguf")


def _pieces_to_bytes(ids: list[int], vocab: dict) -> bytes:
    """SentencePiece detokenization from the GGUF's pieces: U+2581 -> space, <0xNN> -> byte, control -> nothing."""
    out = b""
    for i in ids:
        t, typ = vocab["tokens"][i], vocab["types"][i]
        if typ == gguf.TokenType.BYTE:
            out += bytes([int(t[3:5], 16)])
        elif typ == gguf.TokenType.NORMAL:
            out += t.replace("\u2581", " ").encode("utf-8")
    return out


def test_reference_covers_required_models(ref: dict) -> None:
    names = {m["file"] for m in ref["models"]}
    assert REQUIRED <= names
    assert ref["settings"]["n_threads"] == 1
    assert ref["llama_cpp"]["llama_cpp_commit"] != "unknown"


def test_recorded_files_are_the_committed_files(ref: dict) -> None:
    for m in ref["models"]:
        path = MODELS / m["file"]
        assert path.is_file(), f"{m['file']} is recorded but not in models/"
        assert path.stat().st_size == m["size"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == m["sha256"], f"{m['file']} changed since recording"


@pytest.mark.slow
def test_every_model_has_every_prompt_and_consistent_metadata(ref: dict) -> None:
    for m in ref["models"]:
        f = gguf.GGUFReader(MODELS / m["file"]).fields
        assert m["n_vocab"] == len(f["tokenizer.ggml.tokens"].data)
        assert m["n_ctx"] == f["llama.context_length"].contents()
        assert m["eos"] == f["tokenizer.ggml.eos_token_id"].contents()
        assert [c["prompt"] for c in m["cases"]] == ref["prompts"]


def test_prompt_ids_identical_across_files(ref: dict) -> None:
    first = [c["prompt_ids"] for c in ref["models"][0]["cases"]]
    for m in ref["models"][1:]:
        assert [c["prompt_ids"] for c in m["cases"]] == first, m["file"]


def test_prompt_ids_detokenize_to_the_prompt(ref: dict, vocab: dict) -> None:
    assert vocab["add_bos"]
    for c in ref["models"][0]["cases"]:
        ids = c["prompt_ids"]
        assert ids[0] == vocab["bos"]
        text = _pieces_to_bytes(ids[1:], vocab).decode("utf-8")
        # SentencePiece's dummy prefix: one space is added in front of a non-empty prompt.
        assert text == (" " + c["prompt"] if c["prompt"] else ""), c["prompt"]


def test_prompt_ids_match_sentencepiece(ref: dict) -> None:
    spm = pytest.importorskip("sentencepiece", reason="sentencepiece is not installed")
    sp = spm.SentencePieceProcessor(model_file=str(TOKENIZER))
    for c in ref["models"][0]["cases"]:
        assert c["prompt_ids"] == [sp.bos_id()] + sp.encode(c["prompt"]), c["prompt"]


def test_continuations_are_well_formed(ref: dict, vocab: dict) -> None:
    n_predict = ref["settings"]["n_predict"]
    for m in ref["models"]:
        for c in m["cases"]:
            ids, top5, margins = c["ids"], c["top5"], c["margins"]
            assert 1 <= len(ids) <= n_predict
            if len(ids) < n_predict:  # stopped early: after EOS or at the end of the context
                assert ids[-1] == m["eos"] or len(c["prompt_ids"]) + len(ids) == m["n_ctx"]
            assert m["eos"] not in ids[:-1]
            assert all(0 <= i < m["n_vocab"] for i in ids)
            assert len(top5) == 5 and top5[0][0] == ids[0]
            assert [v for _, v in top5] == sorted((v for _, v in top5), reverse=True)
            assert len(margins) == len(ids) and all(x >= 0 for x in margins)
            assert abs(margins[0] - (top5[0][1] - top5[1][1])) < 1e-3
            assert c["text"] == _pieces_to_bytes(ids, vocab).decode("utf-8", errors="replace")


def test_f16_continuations_read_as_text(ref: dict) -> None:
    m = next(m for m in ref["models"] if m["file"] == "dte-tiny-f16.gguf")
    c = next(c for c in m["cases"] if c["prompt"] == "Hello, I am")
    words = c["text"].split()
    assert len(words) >= 4 and sum(w.strip(".,!?;:'\"").isalpha() for w in words) >= len(words) // 2, c["text"]


def test_rederive_with_llamacpp(ref: dict) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (the committed data is the reference)")
    sys.path.insert(0, str(REPO / "scripts"))
    import llamacpp_ref

    for m in ref["models"]:
        if m["file"] not in ("dte-tiny-q8_0.gguf", "dte-tiny-q4_k_m.gguf"):
            continue
        with llamacpp_ref.LlamaCpp(MODELS / m["file"]) as lc:
            for c in m["cases"]:
                assert lc.tokenize(c["prompt"]) == c["prompt_ids"], c["prompt"]
            for c in m["cases"][:3]:
                ids, first, _ = lc.greedy(c["prompt_ids"], ref["settings"]["n_predict"])
                assert ids == c["ids"], (m["file"], c["prompt"])
                assert abs(float(first[c["top5"][0][0]]) - c["top5"][0][1]) < 1e-3
