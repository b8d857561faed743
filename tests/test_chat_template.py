"""Chat templates (src/dte_build/chat_template.py, firmware/engine/chat.c) against llama-cpp-python's own Jinja2
chat formatter (llama_cpp.llama_chat_format.Jinja2ChatFormatter, the reference renderer) on SmolLM2's template and
llama.cpp's collection of real templates (models/templates/*.jinja)."""

from __future__ import annotations

import ctypes
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from _hostc import build, firmware
from click.testing import CliRunner
from model_factory import ModelSpec, make_model

from dte_build.chat_template import ChatShape, ChatTemplate, chat_shape, firmware_chat, model_chat_template
from dte_build.cli import main
from dte_build.errors import DteError

llama_chat_format = pytest.importorskip("llama_cpp.llama_chat_format", reason="llama-cpp-python is the reference")

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>'"
          " + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
RAISES = "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
# Templates of families whose turns are fixed per-role markup: the firmware's shape must accept them.
MUST_FIT = ("meta-llama-Llama-3.1-8B-Instruct", "meta-llama-Llama-3.3-70B-Instruct", "Qwen-Qwen2.5-7B-Instruct",
            "google-gemma-2-2b-it", "microsoft-Phi-3.5-mini-instruct", "HuggingFaceTB-SmolLM3-3B",
            "ibm-granite-granite-3.3-2B-Instruct")
# Conversations other than the ones chat_shape checks itself (so the comparison is not with its own inputs).
CONVERSATIONS = (
    [("user", "Why is the sky blue?")],
    [("system", "You answer in French."), ("user", "Good morning!")],
    [("user", "  padded question \n"), ("assistant", "An answer."), ("user", "ok")],
    [("system", "Système: réponds brièvement 🙂"), ("user", "2+2?"), ("assistant", "4"), ("user", "3+3?"),
     ("assistant", "6"), ("user", "and 4+4?")],
)
FIXED_NOW = datetime(2026, 3, 14, 15, 9, tzinfo=timezone.utc)


def _messages(pairs):
    return [{"role": r, "content": c} for r, c in pairs]


def reference(source: str, pairs, bos: str = "<s>", eos: str = "</s>", add_generation_prompt: bool = True) -> str:
    formatter = llama_chat_format.Jinja2ChatFormatter(source, eos_token=eos, bos_token=bos,
                                                      add_generation_prompt=add_generation_prompt)
    return formatter(messages=_messages(pairs)).prompt


def _templates(tree: Path) -> list[Path]:
    paths = sorted((tree / "models" / "templates").glob("*.jinja"))
    assert len(paths) > 50, "llama.cpp's template collection is missing"
    return paths


def _fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both renderers call datetime.now() for strftime_now: pin it so a date cannot tick between them."""
    class _Now(datetime):
        @classmethod
        def now(cls, tz=None):   # noqa: ANN001, ANN206
            return FIXED_NOW if tz is None else FIXED_NOW.astimezone(tz)

    monkeypatch.setattr("dte_build.chat_template.datetime", _Now)
    monkeypatch.setattr(llama_chat_format, "datetime", _Now)


@pytest.mark.slow
def test_smollm2_template_renders_as_llama_cpp(smollm2_path: Path) -> None:
    template = model_chat_template(smollm2_path)
    assert template is not None and template.eos_token == "<|im_end|>"
    for pairs in CONVERSATIONS:
        for agp in (True, False):
            want = reference(template.source, pairs, template.bos_token, template.eos_token, agp)
            assert template.render(_messages(pairs), agp) == want


@pytest.mark.slow
def test_every_llama_cpp_template_renders_as_llama_cpp(llama_cpp_tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same text, or both refuse, for each of llama.cpp's ~70 real templates and each conversation."""
    _fixed_clock(monkeypatch)
    compared = 0
    for path in _templates(llama_cpp_tree):
        source = path.read_text()
        template = ChatTemplate(source, "<s>", "</s>", name=path.name)
        for pairs in CONVERSATIONS:
            try:
                want = reference(source, pairs)
            except Exception:   # noqa: BLE001 - the reference refuses: so must we, in one line
                with pytest.raises(DteError) as info:
                    template.render(_messages(pairs))
                assert "\n" not in str(info.value)
                continue
            assert template.render(_messages(pairs)) == want, path.name
            compared += 1
    assert compared > 150


@pytest.mark.slow
def test_shape_reproduces_llama_cpp_for_every_template_it_accepts(llama_cpp_tree: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """For every template chat_shape accepts, its per-role glue gives the reference rendering of new
    conversations; the ones it refuses get a one-line reason; the plainly per-role families are accepted."""
    _fixed_clock(monkeypatch)
    accepted = []
    for path in _templates(llama_cpp_tree):
        template = ChatTemplate(path.read_text(), "<s>", "</s>", name=path.name)
        try:
            shape = chat_shape(template)
        except DteError as exc:
            assert "\n" not in str(exc) and path.name in str(exc)
            continue
        accepted.append(path.stem)
        for pairs in CONVERSATIONS:
            if pairs[0][0] == "system" and not shape.has_system:
                continue
            assert shape.conversation(_messages(pairs)) == reference(path.read_text(), pairs), path.name
    assert set(MUST_FIT) <= set(accepted)


@pytest.fixture(scope="module")
def chat_lib() -> ctypes.CDLL:
    lib = ctypes.CDLL(str(build("chat", firmware("engine/chat.c"), shared=True)))
    for name, args in (("dte_chat_first_turn", [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                                                 ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]),
                       ("dte_chat_next_turn", [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                                                ctypes.c_size_t])):
        getattr(lib, name).argtypes = args
        getattr(lib, name).restype = ctypes.c_size_t
    return lib


class _Format(ctypes.Structure):   # engine/chat.h dte_chat_format
    _fields_ = [("prefix", ctypes.c_char_p), ("prefix_system", ctypes.c_char_p), ("system_end", ctypes.c_char_p),
                ("user_end", ctypes.c_char_p), ("assistant_end", ctypes.c_char_p), ("strip_system", ctypes.c_bool),
                ("strip_user", ctypes.c_bool)]


def _c_format(shape: ChatShape) -> _Format:
    def enc(s: str | None) -> bytes | None:
        return None if s is None else s.encode()

    return _Format(enc(shape.prefix), enc(shape.prefix_system), enc(shape.system_end), enc(shape.user_end),
                   enc(shape.assistant_end), shape.strip_system, shape.strip_user)


def _c_call(fn, *args) -> str:   # noqa: ANN001
    need = fn(*args, None, 0)
    buf = ctypes.create_string_buffer(need + 1)
    assert fn(*args, buf, need + 1) == need
    short = ctypes.create_string_buffer(5)   # a short buffer: truncated and terminated, the full length returned
    assert fn(*args, short, 5) == need and short.raw[4] == 0
    return buf.raw[:need].decode()


@pytest.mark.parametrize("name", ["smollm2", *MUST_FIT])
def test_c_chat_turns_equal_llama_cpp(name: str, chat_lib: ctypes.CDLL, smollm2_path: Path, llama_cpp_tree: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """engine/chat.c fed the build's shape: first turn (with and without system) and first turn + reply + next turn
    equal the reference renderings."""
    _fixed_clock(monkeypatch)
    if name == "smollm2":
        template = model_chat_template(smollm2_path)
    else:
        template = ChatTemplate((llama_cpp_tree / "models/templates" / f"{name}.jinja").read_text(), "<s>", "</s>")
    assert template is not None
    shape = chat_shape(template)
    fmt = _c_format(shape)

    def ref(pairs) -> str:   # noqa: ANN001
        return reference(template.source, pairs, template.bos_token, template.eos_token)

    system, user, reply, user2 = "Speak as a tree. ", " Who are you?", "I am a tree.", "And how old?\n"
    assert _c_call(chat_lib.dte_chat_first_turn, ctypes.byref(fmt), None, 0, user.encode(),
                   len(user.encode())) == ref([("user", user)])
    first = ref([("system", system), ("user", user)]) if shape.has_system else None
    if first is not None:
        assert _c_call(chat_lib.dte_chat_first_turn, ctypes.byref(fmt), system.encode(), len(system.encode()),
                       user.encode(), len(user.encode())) == first
    turn2 = _c_call(chat_lib.dte_chat_next_turn, ctypes.byref(fmt), user2.encode(), len(user2.encode()))
    assert ref([("user", user)]) + reply + turn2 == ref([("user", user), ("assistant", reply), ("user", user2)])


def test_template_that_raises_is_one_line() -> None:
    template = ChatTemplate(RAISES, name="bad template")
    with pytest.raises(DteError) as info:
        template.render(_messages([("user", "hi")]))
    assert "alternate" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(DteError, match="refuses the conversation"):
        chat_shape(template)
    with pytest.raises(DteError, match="not a valid Jinja template"):
        ChatTemplate("{% for %}").render([])


def test_content_dependent_template_is_refused() -> None:
    """A template that numbers its turns cannot be glued from fixed per-role strings."""
    numbered = ("{% for m in messages %}[{{ loop.index }}] {{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                "{% if add_generation_prompt %}assistant:{% endif %}")
    with pytest.raises(DteError, match="does not fit the firmware's chat format"):
        chat_shape(ChatTemplate(numbered))


def test_build_date_comes_from_source_date_epoch(tmp_path: Path, llama_cpp_tree: Path) -> None:
    """Llama 3.2's template prints today's date: the build renders it at SOURCE_DATE_EPOCH (reproducible)."""
    source = (llama_cpp_tree / "models/templates/meta-llama-Llama-3.2-3B-Instruct.jinja").read_text()
    model = make_model(tmp_path / "m.gguf", ModelSpec(chat_template=source))
    shape = firmware_chat(model, None, epoch=86400 * 365)
    assert shape is not None and "01 Jan 1971" in shape.prefix
    assert firmware_chat(model, None, epoch=86400 * 365) == shape
    assert firmware_chat(model, False) is None


def test_generate_chat_refuses_a_raising_template_in_one_line(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m.gguf", ModelSpec(chat_template=RAISES))
    result = CliRunner().invoke(main, ["generate", "-m", str(model), "--chat", "-p", "hi", "-n", "2"])
    assert result.exit_code != 0
    assert "alternate" in result.output and "Traceback" not in result.output
    plain = make_model(tmp_path / "plain.gguf", ModelSpec())
    result = CliRunner().invoke(main, ["generate", "-m", str(plain), "--chat", "-p", "hi", "-n", "2"])
    assert result.exit_code != 0 and "no chat template" in result.output


def test_build_refuses_a_raising_template_in_one_line(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m.gguf", ModelSpec(chat_template=RAISES))
    out = tmp_path / "img"
    result = CliRunner().invoke(main, ["build", "--board", "qemu-q35", "--model", str(model), "--chat", "-o",
                                       str(out)])
    assert result.exit_code != 0 and "alternate" in result.output and not out.exists()
    result = CliRunner().invoke(main, ["build", "--board", "qemu-q35", "--model", str(make_model(
        tmp_path / "plain.gguf", ModelSpec())), "--chat", "-o", str(out)])
    assert result.exit_code != 0 and "no chat template" in result.output and not out.exists()


def test_config_header_carries_the_shape(smollm2_path: Path) -> None:
    from dte_build.board import load_board
    from dte_build.toolchain import FirmwareOptions, c_string, config_header

    shape = firmware_chat(smollm2_path, True)
    text = config_header(load_board("qemu-q35"), FirmwareOptions(chat=shape, boot_chat=True, prompt="Hi"), "0" * 16)
    assert f"#define DTE_CHAT_USER_END {c_string(shape.user_end)}" in text
    assert "#define DTE_BOOT_CHAT 1" in text and '#define DTE_CHAT_PROMPT "Hi"' in text
    assert "#define DTE_CHAT 0" in config_header(load_board("qemu-q35"), FirmwareOptions(), "0" * 16)
    assert json.dumps(shape.to_dict())


def test_build_refuses_a_template_that_does_not_fit(tmp_path: Path) -> None:
    """Without --chat the template is still compiled in for network turns, so one that does not fit is refused
    (before compiling anything), naming --no-chat."""
    numbered = ("{% for m in messages %}[{{ loop.index }}] {{ m['content'] }}\n{% endfor %}"
                "{% if add_generation_prompt %}assistant:{% endif %}")
    model = make_model(tmp_path / "m.gguf", ModelSpec(chat_template=numbered))
    out = tmp_path / "img"
    result = CliRunner().invoke(main, ["build", "--board", "qemu-q35", "--model", str(model), "-o", str(out)])
    assert result.exit_code != 0 and "does not fit" in result.output and "--no-chat" in result.output
    assert "Traceback" not in result.output and not out.exists()
