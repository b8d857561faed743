"""Chat templates: a model's `tokenizer.chat_template` (Jinja) rendered on the host, and the per-role pieces the
firmware formats chat turns with.

Rendering follows HF transformers' `apply_chat_template` and llama-cpp-python's `Jinja2ChatFormatter`: Jinja2's
ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks, the `loopcontrols` extension, `{% generation %}`
passed through, `tojson` as `json.dumps(ensure_ascii=False)`, and the globals `messages`, `bos_token`,
`eos_token` (the vocabulary's text of those ids), `add_generation_prompt`, `raise_exception` and `strftime_now`
(and `tools`, `tool_choice`, `functions`, `function_call` as None: no tool calling).
The rendered text is tokenized with special tokens parsed and no BOS added (the template writes it when the model
wants one), as llama-cpp-python's chat handler does.

The firmware cannot run Jinja. `chat_shape` renders the template with sentinel messages and cuts the result into
the strings around each message's content (`ChatShape`), then checks that gluing those strings around other
contents reproduces the template's own rendering of multi-turn conversations; a template that does not fit that
shape (content-dependent markup, per-turn counters, ...) is refused with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import DteError

Message = dict[str, str]
_STRIP = " \t\n\r\v\f\x1c\x1d\x1e\x1f"   # what engine/chat.c strips for a `| trim` template (ASCII)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _raise_exception(message: str) -> None:
    raise _TemplateRaised(message)


class _TemplateRaised(Exception):
    """The template called raise_exception(message)."""


@dataclass(frozen=True)
class ChatTemplate:
    """A Jinja chat template with the special-token texts it is rendered with."""

    source: str
    bos_token: str = ""
    eos_token: str = ""
    name: str = "chat template"   # for error messages (e.g. the model file's name)

    def render(self, messages: Sequence[Message], add_generation_prompt: bool = True,
               now: datetime | None = None) -> str:
        """The template's text for `messages` ([{"role", "content"}]), plus the assistant's opening when
        `add_generation_prompt`. `now` fixes `strftime_now` (default: the current local time, as
        llama-cpp-python). A template error or raise_exception gives a one-line DteError."""
        import jinja2

        try:
            compiled = _environment().from_string(self.source)
        except jinja2.TemplateSyntaxError as exc:
            raise DteError(f"{self.name}: not a valid Jinja template (line {exc.lineno}: {exc.message})",
                           "the model's tokenizer.chat_template is broken; use --no-chat") from None
        clock = now

        def strftime_now(fmt: str) -> str:
            return (clock or datetime.now()).strftime(fmt)

        try:
            return compiled.render(messages=[dict(m) for m in messages], bos_token=self.bos_token,
                                   eos_token=self.eos_token, add_generation_prompt=add_generation_prompt,
                                   raise_exception=_raise_exception, strftime_now=strftime_now,
                                   tools=None, tool_choice=None, functions=None, function_call=None)
        except _TemplateRaised as exc:
            raise DteError(f"{self.name} refuses the conversation: {_one_line(str(exc))}",
                           "the template's own check failed (roles, order or content)") from None
        except Exception as exc:   # jinja2 errors and Python errors inside the sandbox
            raise DteError(f"{self.name} failed to render: {type(exc).__name__}: {_one_line(str(exc))}",
                           "the model's tokenizer.chat_template cannot format this conversation") from None


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]


_ENV: Any = None


def _environment() -> Any:
    """The Jinja2 environment chat templates run in (one per process; it holds no per-template state)."""
    global _ENV
    if _ENV is None:
        import jinja2
        import jinja2.ext
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        class _GenerationTag(jinja2.ext.Extension):
            """HF's `{% generation %}...{% endgeneration %}` marks assistant text for training masks: rendered
            as its body."""

            tags = {"generation"}

            def parse(self, parser: Any) -> Any:
                parser.stream.skip(1)
                return parser.parse_statements(("name:endgeneration",), drop_needle=True)

        env = ImmutableSandboxedEnvironment(loader=jinja2.BaseLoader(), trim_blocks=True, lstrip_blocks=True,
                                            extensions=[_GenerationTag, jinja2.ext.loopcontrols])
        env.filters["tojson"] = _tojson
        _ENV = env
    return _ENV


# ---------------------------------------------------------------------------------------------------------------
# Reading a model's template


def model_chat_template(path: str | Path) -> ChatTemplate | None:
    """The GGUF's `tokenizer.chat_template` with its BOS/EOS token texts, or None when the model has none."""
    from .image.model_check import chat_strings

    path = Path(path)
    strings = chat_strings(path)  # the engine's GGUF parser: milliseconds, where gguf-py takes seconds
    if strings is None:
        return None
    return ChatTemplate(strings.template, strings.bos, strings.eos,
                        name=f"{path.name}'s chat template")


# ---------------------------------------------------------------------------------------------------------------
# The per-role pieces the firmware formats turns with


@dataclass(frozen=True)
class ChatShape:
    """A template cut into the strings around message contents. A conversation renders as

        [system]  prefix_system + S + system_end + U1 + user_end
        [no sys]  prefix + U1 + user_end
        then per further turn: A_i + assistant_end + U_{i+1} + user_end

    where user_end ends with the generation prompt (the assistant's opening), and assistant_end starts where
    the model's reply stops (its end-of-turn text). Contents are stripped first when strip_* is set (the
    template applies `| trim`). system_end is None when the template has no system message."""

    prefix: str
    prefix_system: str | None
    system_end: str | None
    user_end: str
    assistant_end: str
    strip_system: bool = False
    strip_user: bool = False

    @property
    def has_system(self) -> bool:
        return self.system_end is not None

    def first_turn(self, user: str, system: str | None = None) -> str:
        """The text of a conversation's first turn: [system,] user and the generation prompt."""
        user = user.strip(_STRIP) if self.strip_user else user
        if system is None:
            return self.prefix + user + self.user_end
        if self.prefix_system is None or self.system_end is None:
            raise DteError("the chat template has no system message", "drop the system prompt (--system '')")
        system = system.strip(_STRIP) if self.strip_system else system
        return self.prefix_system + system + self.system_end + user + self.user_end

    def next_turn(self, user: str) -> str:
        """The text after an assistant reply that opens the next user turn and the generation prompt."""
        return self.assistant_end + (user.strip(_STRIP) if self.strip_user else user) + self.user_end

    def conversation(self, messages: Sequence[Message]) -> str:
        """The text of [system?, user, (assistant, user)*] plus the generation prompt, from the pieces."""
        roles = [m["role"] for m in messages]
        system = messages[0]["content"] if roles[:1] == ["system"] else None
        rest = list(messages[1:] if system is not None else messages)
        if not rest or len(rest) % 2 == 0 or any(m["role"] != ("user", "assistant")[i % 2]
                                                 for i, m in enumerate(rest)):
            raise DteError("a chat turn is [system,] user, (assistant, user)*", "end the conversation with a user turn")
        text = self.first_turn(rest[0]["content"], system)
        for i in range(1, len(rest), 2):
            text += rest[i]["content"] + self.next_turn(rest[i + 1]["content"])
        return text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_SENTINELS = {"system": "DTESYS0sentinel", "user": "DTEUSR0sentinel", "assistant": "DTEAST0sentinel"}
# Conversations the decomposition must reproduce exactly (ordinary texts: spaces, punctuation, non-ASCII).
_CHECKS: tuple[tuple[tuple[str, str], ...], ...] = (
    (("user", "Hello! What is your name?"),),
    (("system", "You are a helpful assistant."), ("user", "What is 2 + 2?")),
    (("user", "Hi."), ("assistant", "Hello, how can I help?"), ("user", "Tell me a joke.")),
    (("system", "Be brief."), ("user", "Name a colour."), ("assistant", "Blue."), ("user", "Another one?"),
     ("assistant", "Grün, or green."), ("user", "Thanks — and a third?")),
)


def chat_shape(template: ChatTemplate, now: datetime | None = None) -> ChatShape:
    """Cut `template` into a ChatShape and check it reproduces the template on multi-turn conversations; a
    DteError says why a template does not fit. `now` fixes strftime_now (a build passes its SOURCE_DATE_EPOCH)."""
    now = now or datetime.now(timezone.utc)
    s, u1, a1, u2 = _SENTINELS["system"], _SENTINELS["user"], _SENTINELS["assistant"], "DTEUSR1sentinel"

    def render(*pairs: tuple[str, str]) -> str:
        return template.render([{"role": r, "content": c} for r, c in pairs], True, now)

    def cut(text: str, contents: Sequence[str], what: str) -> list[str]:
        """The glue strings between `contents` (which must appear in order) in `text`."""
        pieces, at = [], 0
        for content in contents:
            found = text.find(content, at)
            if found < 0:
                raise _Unfit(f"the {what} leaves out a message's content")
            pieces.append(text[at:found])
            at = found + len(content)
        return pieces + [text[at:]]

    try:
        prefix, user_end = cut(render(("user", u1)), [u1], "one-message conversation")
        multi = cut(render(("user", u1), ("assistant", a1), ("user", u2)), [u1, a1, u2], "three-message conversation")
        if multi[0] != prefix:
            raise _Unfit("the text before the first message depends on the rest of the conversation")
        if multi[1] != user_end:
            raise _Unfit(f"it opens the reply it asks for ({_short(user_end)}) differently from an earlier reply in "
                         f"the history ({_short(multi[1])}), as reasoning and channel templates do, so a follow-up "
                         "turn on the appliance's cache would not be the template's text")
        if multi[3] != user_end:
            raise _Unfit("a later user turn ends differently from the first")
        assistant_end = multi[2]
        prefix_system = system_end = None
        try:
            with_system = render(("system", s), ("user", u1))
        except DteError:
            with_system = None   # the template refuses system messages: chat without one
        if with_system is not None and s in with_system:
            prefix_system, system_end, tail = cut(with_system, [s, u1], "conversation with a system message")
            if tail != user_end:
                raise _Unfit("a system message changes how the user turn ends")
        shape = ChatShape(prefix, prefix_system, system_end, user_end, assistant_end,
                          strip_system=system_end is not None and _strips(render, ("system", s), ("user", u1)),
                          strip_user=_strips(render, ("user", u1)))
        for pairs in _CHECKS:
            if pairs[0][0] == "system" and not shape.has_system:
                continue
            messages = [{"role": r, "content": c} for r, c in pairs]
            want = template.render(messages, True, now)
            got = shape.conversation(messages)
            if got != want:
                at = next((i for i, (x, y) in enumerate(zip(got, want)) if x != y), min(len(got), len(want)))
                raise _Unfit(f"a {len(messages)}-message conversation renders differently from its per-role pieces "
                             f"(from character {at}: template {want[at:at + 40]!r}, pieces {got[at:at + 40]!r})")
    except _Unfit as exc:
        raise DteError(f"{template.name} does not fit the firmware's chat format: {exc}",
                       "dte build --no-chat builds it for plain completion") from None
    return shape


def _short(text: str) -> str:
    """repr() of the end of `text` (where the turns differ), at most 40 characters."""
    return repr(text if len(text) <= 40 else "..." + text[-37:])


class _Unfit(Exception):
    """Why a template does not fit ChatShape."""


def _strips(render: Callable[..., str], *pairs: tuple[str, str]) -> bool:
    """Whether the template strips the whitespace around the first message's content (`| trim`)."""
    padded = f"  {pairs[0][1]}\n "
    return padded not in render((pairs[0][0], padded), *pairs[1:])


# ---------------------------------------------------------------------------------------------------------------
# C for the firmware


def c_defines(shape: ChatShape | None) -> list[tuple[str, str]]:
    """The dte_config.h macros engine/chat.c formats turns with (DTE_CHAT 0: plain completion)."""
    from .toolchain import c_string   # late: toolchain imports this module

    if shape is None:
        return [("DTE_CHAT", "0")]
    return [
        ("DTE_CHAT", "1"),
        ("DTE_CHAT_PREFIX", c_string(shape.prefix)),
        ("DTE_CHAT_HAS_SYSTEM", "1" if shape.has_system else "0"),
        ("DTE_CHAT_PREFIX_SYSTEM", c_string(shape.prefix_system or "")),
        ("DTE_CHAT_SYSTEM_END", c_string(shape.system_end or "")),
        ("DTE_CHAT_USER_END", c_string(shape.user_end)),
        ("DTE_CHAT_ASSISTANT_END", c_string(shape.assistant_end)),
        ("DTE_CHAT_STRIP_SYSTEM", "1" if shape.strip_system else "0"),
        ("DTE_CHAT_STRIP_USER", "1" if shape.strip_user else "0"),
    ]


def firmware_chat(model_path: str | Path | None, chat: bool | None, epoch: int = 0) -> ChatShape | None:
    """The chat format `dte build` compiles in for `model_path`: None without a model, with `chat` False
    (--no-chat) or for a model without a template (plain completion); the template's ChatShape otherwise,
    rendered at `epoch` (SOURCE_DATE_EPOCH: a template that prints today's date gives the same firmware every
    build). `chat` True (--chat) insists on a template."""
    if chat is False:
        return None
    template = model_chat_template(model_path) if model_path is not None else None
    if template is None:
        if chat:
            raise DteError("--chat: the model has no chat template" if model_path is not None else
                           "--chat needs a model (its chat template formats the turns)",
                           "pass --model with a GGUF that has tokenizer.chat_template, or drop --chat")
        return None
    return chat_shape(template, now=datetime.fromtimestamp(epoch, timezone.utc))
