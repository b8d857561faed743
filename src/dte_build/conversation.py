"""A conversation with an appliance: the messages so far and what a turn sends, shared by `dte chat` and
`dte serve` so both hold conversations the same way.

Protocol version 1 has no conversations on the appliance: each PROMPT carries its whole text in one frame (at most
`protocol.MAX_PROMPT_TEXT` bytes) and the appliance prefixes BOS and its persona's system line. A single user
message is sent as its text (what `dte generate -p TEXT` sends); a longer conversation is written out one message
per line, `System: ...`, `User: ...`, `Assistant: ...`, then `Assistant:` for the model to continue
(docs/serve.md). When the transcript outgrows a frame, `dte chat` drops the oldest exchanges (never the system
message); `dte serve` refuses it (400 context_length_exceeded), since an API client owns its history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from . import protocol as p
from .client import Client, Generation

ROLE_NAMES = {"system": "System", "user": "User", "assistant": "Assistant"}


@dataclass(frozen=True)
class Message:
    role: str      # system | user | assistant
    content: str


def transcript(messages: tuple[Message, ...] | list[Message]) -> str:
    """The PROMPT text for a conversation that ends with the user's message."""
    if len(messages) == 1:
        return messages[0].content
    lines = [f"{ROLE_NAMES[m.role]}: {m.content}" for m in messages]
    return "\n".join(lines) + "\nAssistant:"


def fit(messages: list[Message], limit: int = p.MAX_PROMPT_TEXT) -> tuple[list[Message], int]:
    """`messages` with the oldest non-system messages dropped until the transcript fits `limit` bytes; and how many
    were dropped. The last (user) message is always kept, even when it alone is too long."""
    kept = list(messages)
    dropped = 0
    while len(transcript(kept).encode("utf-8")) > limit:
        first = next((i for i, m in enumerate(kept[:-1]) if m.role != "system"), None)
        if first is None:
            break
        del kept[first]
        dropped += 1
    return kept, dropped


@dataclass
class Conversation:
    """One chat with an appliance over `client`, remembering its turns (`history=False`: each turn alone)."""

    client: Client
    system: str = ""
    history: bool = True
    messages: list[Message] = field(default_factory=list)
    last: Generation | None = None     # the latest turn's generation, complete or not

    def reset(self, system: str | None = None) -> None:
        """Forget the turns (and set a new system message when given)."""
        self.messages = []
        if system is not None:
            self.system = system

    def prompt_for(self, text: str) -> tuple[str, int]:
        """The PROMPT text for a user turn `text`, and how many old messages had to be left out to fit."""
        turns = [*self.messages, Message("user", text)] if self.history else [Message("user", text)]
        if self.system:
            turns.insert(0, Message("system", self.system))
        kept, dropped = fit(turns)
        return transcript(kept), dropped

    def ask(self, text: str, sampling: p.Prompt, *, on_token: Callable[[p.Token], None] | None = None) -> Generation:
        """Generate the reply to the user's `text` (settings from `sampling`, its text ignored); the exchange is
        remembered unless cancelled. Ctrl-C cancels on the appliance, then re-raises KeyboardInterrupt: `last.done`
        is set when the appliance confirmed the cancel, None when a second Ctrl-C cut the wait short."""
        prompt, _ = self.prompt_for(text)
        request = p.Prompt(prompt, n_predict=sampling.n_predict, temperature=sampling.temperature,
                           top_k=sampling.top_k, top_p=sampling.top_p, seed=sampling.seed)
        self.last = result = Generation()
        self.client.send(p.FrameType.PROMPT, request.encode())
        self.client.collect(result, on_token=on_token)
        if not result.cancelled:
            self.messages += [Message("user", text), Message("assistant", result.text.strip())]
        return result
