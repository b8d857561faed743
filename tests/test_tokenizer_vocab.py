"""The engine's tokenizers against llama.cpp on llama.cpp's own tokenizer test suite and on random text.

References, none of them from dte: the `.inp`/`.out` files next to each `models/ggml-vocab-*.gguf` of llama.cpp's
tree (inputs and the ids llama.cpp's test-tokenizer-0 expects, add_special false, parse_special false), and
llama-cpp-python 0.3.36 (`Llama(vocab_only=True).tokenize(text, add_bos, special)`) on a few hundred random
strings per vocabulary from a fixed seed. Exact equality everywhere: tokenization is integer work, there is no
tolerance to state.

Known limit (documented in docs/engine.md): dte's Unicode tables come from Python's unicodedata (Unicode 14.0 here);
llama.cpp's are newer, so code points assigned after 14.0 are "unassigned" to dte. The random strings draw only
code points assigned both in this interpreter's Unicode version and in the committed tables' version.
"""

from __future__ import annotations

import ctypes
import random
import unicodedata
from pathlib import Path

import pytest

from dte_build.engine import Engine

pytestmark = pytest.mark.slow   # the edit-test loop's fast tier leaves it out: `pytest -m "not slow"`

# Every ggml-vocab-*.gguf with tests whose tokenizer dte claims (bert-bge is WordPiece: not claimed).
CLAIMED = ["llama-spm", "phi-3", "gpt-2", "llama-bpe", "qwen2", "qwen35", "deepseek-llm", "deepseek-coder",
           "starcoder", "refact", "command-r", "falcon", "mpt", "gemma-4"]
SEP = b"\n__ggml_vocab_test__\n"


def vocab_path(tree: Path, name: str) -> Path:
    return tree / "models" / f"ggml-vocab-{name}.gguf"


def read_suite(path: Path) -> list[tuple[bytes, list[int]]]:
    """Cases as llama.cpp's tests/test-tokenizer-0.cpp reads them: inputs split on SEP, one output line each."""
    raw = Path(f"{path}.inp").read_bytes()
    inputs: list[bytes] = []
    pos = 0
    while pos < len(raw):
        nxt = raw.find(SEP, pos)
        if nxt < 0:
            inputs.append(raw[pos:])
            break
        inputs.append(raw[pos:nxt])
        pos = nxt + len(SEP)
    outputs = Path(f"{path}.out").read_text(encoding="utf-8").split("\n")
    assert len(outputs) >= len(inputs)
    return [(text, [int(x) for x in line.split()]) for text, line in zip(inputs, outputs)]


# The real model files (their whole GGUF, tokenizer only): SmolLM2 (gpt2/smollm), Gemma 3 (SentencePiece, 262k
# vocabulary, no space prefix).
REAL = {"smollm2": "smollm2_path", "gemma3": "gemma3_path"}


@pytest.fixture(scope="module")
def paths(request: pytest.FixtureRequest, llama_cpp_tree: Path):
    def get(name: str) -> Path:
        if name in REAL:
            return request.getfixturevalue(REAL[name])
        return vocab_path(llama_cpp_tree, name)

    return get


@pytest.fixture(scope="module")
def engines(paths):
    cache: dict[str, Engine] = {}

    def get(name: str) -> Engine:
        if name not in cache:
            cache[name] = Engine(paths(name), vocab_only=True)
        return cache[name]

    yield get
    for e in cache.values():
        e.close()


@pytest.mark.parametrize("name", CLAIMED)
def test_llama_cpp_vocab_suite(llama_cpp_tree: Path, engines, name: str) -> None:
    cases = read_suite(vocab_path(llama_cpp_tree, name))
    assert len(cases) >= 40
    engine = engines(name)
    wrong = [(text, want, got) for text, want in cases
             if (got := engine.tokenize(text, add_bos=False)) != want]
    assert not wrong, f"{len(wrong)}/{len(cases)} cases differ, first: {wrong[0]!r}"


# ---- random strings against llama-cpp-python ----

WHITESPACE = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r", " \n", "\u00a0", "\u3000", "\u2009", "\u0085",
              "\u2028", "\x0b", "\x0c"]
FRAGMENTS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'Re", "n't", "don't", "I'M", "'",
             "Hello", "world", "the", "ie", "CamelCase", "HTTPServer", "iPhone", "McDonald's", "XMLHttpRequest",
             "ÉCOLEétude", "ΑθήναΑΘΗΝΑ", "Äpfel", "naïve", "café", "ß", "İstanbul", "ﬁ", "Ǆ",
             "Привет", "мир", "Γειά", "σου", "مرحبا", "שלום", "नमस्ते", "हिन्दी", "안녕하세요", "こんにちは", "カタカナ",
             "你好", "世界", "漢字", "ไทย", "ქართული", "Ելք",
             "🙂", "🦙", "👍🏽", "👨‍👩‍👧", "🇩🇪", "❤️", "∑", "π", "≈", "→", "©", "®", "™", "°", "½", "²", "³", "Ⅻ",
             "0", "7", "42", "123", "2024", "1234567", "3.14159", "1,000", "٣", "१२", "①",
             "!", "?", ".", ",", "...", "…", "-", "--", "—", "(", ")", "[", "]", "{", "}", "<", ">", "/", "\\",
             "$", "+", "=", "^", "~", "|", "`", "@", "#", "%", "&", "*", "_", "\"", ";", ":", "'''", "```",
             "e\u0301", "\u0301", "\u200b", "\u200d", "\ufeff", "\x00", "\x7f", "\ufffd",
             "<s>", "</s>", "<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>",
             "<|eot_id|>", "<start_of_turn>", "<end_of_turn>", "<pad>", "<|fim_prefix|>", "<mask>"]


def _table_flags():
    """dte_unicode_flags from the hosted library: only to keep the random input inside the Unicode version the
    committed tables were generated from (a newer Python assigns more code points; see the module docstring)."""
    from dte_build.engine import load_library

    fn = load_library().dte_unicode_flags
    fn.restype, fn.argtypes = ctypes.c_uint16, [ctypes.c_uint32]
    return fn


_FLAGS = None


def assigned(cpt: int) -> bool:
    global _FLAGS
    if _FLAGS is None:
        _FLAGS = _table_flags()
    return unicodedata.category(chr(cpt)) not in ("Cn", "Cs") and _FLAGS(cpt) != 1   # 1: unassigned in the tables


def random_text(rng: random.Random) -> str:
    parts: list[str] = []
    for _ in range(rng.randint(1, 12)):
        r = rng.random()
        if r < 0.45:
            parts.append(rng.choice(FRAGMENTS))
        elif r < 0.7:
            parts.append(rng.choice(WHITESPACE))
        elif r < 0.85:
            while not assigned(c := rng.randrange(0x20, 0x3000 if rng.random() < 0.7 else 0x30000)):
                pass
            parts.append(chr(c) * rng.randint(1, 3))
        else:
            parts.append("".join(chr(rng.randrange(0x20, 0x7f)) for _ in range(rng.randint(1, 8))))
    return "".join(parts)


N_RANDOM = 300


@pytest.fixture(scope="module")
def llama_cpp():
    llama_cpp = pytest.importorskip("llama_cpp", reason="pip install llama-cpp-python==0.3.36")
    return llama_cpp


@pytest.fixture(scope="module")
def refs(paths, llama_cpp):
    """llama.cpp's vocabulary-only models, loaded once per module (a 256k vocabulary takes seconds)."""
    cache: dict[str, object] = {}

    def get(name: str):
        if name not in cache:
            cache[name] = llama_cpp.Llama(model_path=str(paths(name)), vocab_only=True, verbose=False)
        return cache[name]

    return get


@pytest.mark.parametrize("name", CLAIMED + list(REAL))
def test_random_strings_match_llama_cpp(engines, refs, name: str) -> None:
    ref = refs(name)
    engine = engines(name)
    rng = random.Random(f"dte-tokenizer-{name}")
    wrong = []
    for i in range(N_RANDOM):
        text = random_text(rng).encode("utf-8")
        add_bos, special = bool(i & 1), bool(i & 2)
        want = ref.tokenize(text, add_bos=add_bos, special=special)
        got = engine.tokenize(text, add_bos=add_bos, special=special)
        if got != want:
            wrong.append((text, add_bos, special, want, got))
    assert not wrong, f"{len(wrong)}/{N_RANDOM} differ, first: {wrong[0]!r}"


@pytest.mark.parametrize("name", CLAIMED + list(REAL))
def test_end_of_generation_ids_and_pieces_match_llama_cpp(engines, refs, llama_cpp, name: str) -> None:
    """llama_vocab_is_eog for every id; token_to_piece (special off and on) for a sample of ids plus every
    control/user-defined one."""
    vocab = llama_cpp.llama_model_get_vocab(refs(name).model)
    engine = engines(name)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    assert engine.n_vocab == n_vocab
    want_eog = [i for i in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, i)]
    assert want_eog
    got_eog = [i for i in range(n_vocab) if engine.is_eog(i)]
    assert got_eog == want_eog
    rng = random.Random(name)
    ids = sorted(set(rng.sample(range(n_vocab), min(n_vocab, 3000))
                     + [i for i in range(n_vocab) if llama_cpp.llama_vocab_get_attr(vocab, i) & 0x18]))
    buf = ctypes.create_string_buffer(4096)
    for special in (False, True):
        for i in ids:
            n = llama_cpp.llama_token_to_piece(vocab, i, buf, 4096, 0, special)
            assert engine.piece(i, special) == buf.raw[:n], (i, special)


def test_special_tokens_parse_only_when_asked(engines) -> None:
    engine = engines("smollm2")
    im_start = engine.tokenize("<|im_start|>", add_bos=False, special=True)
    assert len(im_start) == 1 and engine.piece(im_start[0], special=True) == b"<|im_start|>"
    assert len(engine.tokenize("<|im_start|>", add_bos=False)) > 1
    assert engine.is_eog(engine.tokenize("<|im_end|>", add_bos=False, special=True)[0])


def test_dte_tokenize_command(smollm2_path: Path, refs) -> None:
    import json

    import jsonschema
    from click.testing import CliRunner

    from dte_build.cli import main
    from dte_build.paths import REPO_ROOT

    text = "<|im_start|>user\nHéllo 🦙 it's 2024<|im_end|>\n"
    ref = refs("smollm2")
    result = CliRunner().invoke(main, ["tokenize", "-m", str(smollm2_path), "--special", "--json", text])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    jsonschema.validate(data, json.loads((REPO_ROOT / "docs" / "schemas" / "tokenize.json").read_text()))
    assert data["ids"] == ref.tokenize(text.encode(), add_bos=True, special=True)
    plain = CliRunner().invoke(main, ["tokenize", "-m", str(smollm2_path), "--no-bos", "--ids", text])
    assert json.loads(plain.stdout) == ref.tokenize(text.encode(), add_bos=False)
    table = CliRunner().invoke(main, ["tokenize", "-m", str(smollm2_path), "Hello world"])
    assert table.stdout.splitlines()[-1].split() == [str(ref.tokenize(b"Hello world")[-1]), "->", "'", "world'"]


# ---- every pre-tokenizer name dte accepts, checked on llama.cpp itself ----
# llama.cpp's suite has vocabularies for one name per family; the other names (aliases, and tekken, which has no
# test vocabulary) are checked by relabelling the gpt-2 vocabulary's tokenizer.ggml.pre and comparing with
# llama.cpp on random text: the merges are GPT-2's, the splitting is the named pre-tokenizer's.
ALIASES = ["default", "llama3", "llama-v3", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano",
           "dbrx", "smaug-bpe", "codeshell", "exaone", "minerva-7b", "mellum2", "phi-2", "jina-es", "jina-de",
           "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum", "modern-bert", "olmo", "jais", "trillion",
           "granite-docling", "exaone4", "deepseek-r1-qwen", "kormo", "f2llmv2", "stablelm2", "megrez", "hunyuan",
           "solar-open", "tekken", "gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2", "chatglm-bpe", "glm4",
           "glm5", "bloom", "gpt3-finnish", "poro-chat", "viking"]
THOROUGH = {"default", "tekken", "olmo", "dbrx", "llama4", "glm4", "bloom", "viking"}


def relabel(src: Path, dst: Path, pre: str) -> Path:
    """A copy of a vocabulary GGUF with another tokenizer.ggml.pre string (no tensors: nothing else moves)."""
    import struct

    data = src.read_bytes()
    key = b"tokenizer.ggml.pre"
    at = data.index(struct.pack("<Q", len(key)) + key) + 8 + len(key)
    assert struct.unpack_from("<I", data, at)[0] == 8          # GGUF string
    old_len = struct.unpack_from("<Q", data, at + 4)[0]
    new = pre.encode()
    dst.write_bytes(data[:at + 4] + struct.pack("<Q", len(new)) + new + data[at + 12 + old_len:])
    return dst


@pytest.mark.parametrize("pre", ALIASES)
def test_pre_tokenizer_names_match_llama_cpp(llama_cpp_tree: Path, llama_cpp, tmp_path: Path, pre: str) -> None:
    path = relabel(vocab_path(llama_cpp_tree, "gpt-2"), tmp_path / f"{pre}.gguf", pre)
    ref = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    rng = random.Random(f"dte-pre-{pre}")
    n = N_RANDOM if pre in THOROUGH else 40
    with Engine(path, vocab_only=True) as engine:
        for i in range(n):
            text = random_text(rng).encode("utf-8")
            want = ref.tokenize(text, add_bos=bool(i & 1), special=bool(i & 2))
            assert engine.tokenize(text, add_bos=bool(i & 1), special=bool(i & 2)) == want, text
