"""Bad tokenizer metadata gives a one-line error, never a crash; and the committed Unicode tables are what the
generator makes from this interpreter's unicodedata."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import gguf
import pytest

from dte_build import unicode_gen
from dte_build.engine import Engine
from dte_build.errors import DteError


def bpe_vocab(path: Path, merges: list[str], pre: str = "gpt-2") -> Path:
    tokens = ["a", "b", "ab", "Ġ", "Ġa"]
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.NORMAL] * len(tokens))
    w.add_token_merges(merges)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def load_error(path: Path) -> str:
    with pytest.raises(DteError) as info:
        Engine(path, vocab_only=True)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_good_tiny_vocab_tokenizes(tmp_path: Path) -> None:
    with Engine(bpe_vocab(tmp_path / "ok.gguf", ["a b", "Ġ a"]), vocab_only=True) as e:
        assert e.tokenize("ab a", add_bos=False) == [2, 4]


def test_merge_naming_an_unknown_piece(tmp_path: Path) -> None:
    assert "names a piece that is not in the vocabulary" in load_error(bpe_vocab(tmp_path / "m.gguf", ["a b", "a zz"]))


def test_merge_making_an_unknown_piece(tmp_path: Path) -> None:
    assert "not in the vocabulary" in load_error(bpe_vocab(tmp_path / "m.gguf", ["b a"]))


def test_unknown_pre_tokenizer(tmp_path: Path) -> None:
    message = load_error(bpe_vocab(tmp_path / "p.gguf", ["a b"], pre="no-such-pre"))
    assert 'unknown pre-tokenizer "no-such-pre"' in message and "llama-bpe" in message


def test_truncated_merges_array(tmp_path: Path) -> None:
    path = bpe_vocab(tmp_path / "t.gguf", ["a b", "Ġ a"])
    data = path.read_bytes()
    cut = data.rfind(b"\xc4\xa0 a")   # inside the last merge string
    short = tmp_path / "short.gguf"
    short.write_bytes(data[:cut + 2])
    load_error(short)


def test_unicode_tables_are_generated(tmp_path: Path) -> None:
    committed = unicode_gen.OUTPUT.read_text()
    if f"(Unicode {unicodedata.unidata_version})" not in committed.splitlines()[0]:
        pytest.skip(f"this Python has Unicode {unicodedata.unidata_version}; the tables were made from another")
    assert unicode_gen.render() == committed
