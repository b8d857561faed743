"""The engine's SentencePiece-BPE tokenizer against the sentencepiece library on a model trained here.

The SPM model is exported to GGUF the way llama.cpp's converter does (convert_hf_to_gguf.py,
_create_vocab_sentencepiece): pieces, scores, token types, add_space_prefix from add_dummy_prefix.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import pytest

from dte_build.engine import Engine
from model_factory import ModelSpec, make_model
from dte_build.paths import REPO_ROOT

spm = pytest.importorskip("sentencepiece", reason="pip install sentencepiece")

EXTRA_TEXT = """Grüße aus München! Ça va très bien, merci. Ñandú, façade, naïve café.
日本語のテキストも少し。 Emoji 🙂 and symbols → ∑ π ≈ 3.14159.
    indented   text\twith\ttabs and  double  spaces.
The quick brown fox jumps over the lazy dog. 1234567890 numbers 42.
"""

SAMPLES = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "  leading spaces and   runs of    spaces  ",
    "tabs\tand\nnewlines\n\n",
    "Grüße aus München, Ça va? naïve café",
    "日本語 テキスト 🙂 ∑",
    "unseen symbols: ☃ ♞ 𝄞 Ω",
    "a",
    " ",
    "x" * 50 + " " + "ab" * 30,
    "design: GGUF tensor KV cache RoPE",
]


@pytest.fixture(scope="module")
def sp_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[spm.SentencePieceProcessor, Path]:
    tmp = tmp_path_factory.mktemp("spm")
    corpus = tmp / "corpus.txt"
    text = (REPO_ROOT / "docs" / "design.md").read_text(encoding="utf-8") + EXTRA_TEXT * 20
    corpus.write_text(text, encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(tmp / "sp"), model_type="bpe", vocab_size=600, byte_fallback=True,
        normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=True,
        character_coverage=0.9995, split_digits=False, num_threads=1, minloglevel=2,
        allow_whitespace_only_pieces=True)
    sp = spm.SentencePieceProcessor(model_file=str(tmp / "sp.model"))
    vocab = []
    for i in range(sp.get_piece_size()):
        tt = gguf.TokenType.NORMAL
        if sp.is_unknown(i):
            tt = gguf.TokenType.UNKNOWN
        elif sp.is_control(i):
            tt = gguf.TokenType.CONTROL
        elif sp.is_unused(i):
            tt = gguf.TokenType.UNUSED
        elif sp.is_byte(i):
            tt = gguf.TokenType.BYTE
        vocab.append((sp.id_to_piece(i), sp.get_score(i), tt))
    path = make_model(tmp / "tok.gguf", ModelSpec(vocab=vocab, n_embd=32, n_ff=32, n_head=2, n_head_kv=1,
                                                  n_layer=1, add_space_prefix=True))
    return sp, path


@pytest.fixture(scope="module")
def engine(sp_model: tuple[object, Path]) -> Engine:
    with Engine(sp_model[1], threads=1) as e:
        yield e


@pytest.mark.parametrize("text", SAMPLES)
def test_ids_match_sentencepiece(sp_model: tuple[spm.SentencePieceProcessor, Path], engine: Engine,
                                 text: str) -> None:
    sp, _ = sp_model
    assert engine.tokenize(text, add_bos=False) == sp.encode(text)


def test_bos_added_per_gguf(sp_model: tuple[spm.SentencePieceProcessor, Path], engine: Engine) -> None:
    sp, _ = sp_model
    assert engine.tokenize("Hello") == [sp.bos_id()] + sp.encode("Hello")
    assert engine.tokenize("") == [sp.bos_id()]


def test_byte_fallback_used_for_unseen_characters(sp_model: tuple[spm.SentencePieceProcessor, Path],
                                                  engine: Engine) -> None:
    sp, _ = sp_model
    ids = engine.tokenize("☃", add_bos=False)
    assert [sp.id_to_piece(i) for i in ids if sp.is_byte(i)] == ["<0xE2>", "<0x98>", "<0x83>"]


@pytest.mark.parametrize("text", SAMPLES)
def test_detokenize_round_trips(sp_model: tuple[spm.SentencePieceProcessor, Path], engine: Engine,
                                text: str) -> None:
    sp, _ = sp_model
    # llama.cpp's token_to_piece keeps the dummy-prefix space that tokenizing added (sentencepiece drops it).
    assert engine.detokenize(sp.encode(text)) == " " + text
