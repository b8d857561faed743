"""Conversations with an appliance over protocol-2 sessions, shared by `dte chat` and `dte serve`.

A session keeps the conversation's tokens (its KV cache) on the appliance: each follow-up turn sends only the new
user text, as a CHAT turn appended to the transcript (the appliance formats it with the model's compiled-in chat
template; docs/protocol.md "Conversations"). A conversation the appliance does not hold — the first turn, a
session that was evicted or expired (GONE), one that filled the context, or history an API client brings — is
sent as one CHAT turn that starts a new transcript and carries the conversation as text (`carried`):

- a single user message: its text (what `dte generate --chat -p TEXT` formats);
- otherwise: a client's system message first, then one line per message (`User: ...`, `Assistant: ...`), the
  last user message last; a blank line separates the system message from the rest.

The protocol has no way to put an assistant reply the appliance did not generate into a transcript without
generating after it, so this is how given history reaches the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from . import protocol as p
from .client import Client, Generation, RemoteError, SessionGone

ROLE_NAMES = {"system": "System", "user": "User", "assistant": "Assistant"}


@dataclass(frozen=True)
class Message:
    role: str      # system | user | assistant
    content: str


def carried(messages: tuple[Message, ...] | list[Message]) -> str:
    """The text of one user turn that carries `messages` (which end with the user's) to a new transcript."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    rest = [m for m in messages if m.role != "system"]
    body = rest[0].content if len(rest) == 1 else "\n".join(f"{ROLE_NAMES[m.role]}: {m.content}" for m in rest)
    return f"{system}\n\n{body}" if system else body


def fit(messages: list[Message], limit: int = p.MAX_PROMPT_TEXT) -> tuple[list[Message], int]:
    """`messages` with the oldest non-system messages dropped until `carried` fits `limit` bytes; and how many
    were dropped. The last (user) message is always kept, even when it alone is too long."""
    kept = list(messages)
    dropped = 0
    while len(carried(kept).encode("utf-8")) > limit:
        first = next((i for i, m in enumerate(kept[:-1]) if m.role != "system"), None)
        if first is None:
            break
        del kept[first]
        dropped += 1
    return kept, dropped


@dataclass
class Conversation:
    """`dte chat`'s conversation over one session (`client`); `history=False` answers every turn on its own."""

    client: Client
    system: str = ""
    history: bool = True
    messages: list[Message] = field(default_factory=list)
    last: Generation | None = None      # the latest turn's generation, complete or not
    dropped: int = 0                    # messages left out of the latest carried transcript
    restarted: str = ""                 # why the latest turn had to start a new transcript ("" when it did not)

    def reset(self, system: str | None = None) -> None:
        """Forget the conversation (and set a new system message when given)."""
        self.messages = []
        self.client.reset()
        if system is not None:
            self.system = system

    def ask(self, text: str, sampling: p.Prompt, *, on_token: Callable[[p.Token], None] | None = None) -> Generation:
        """The reply to the user's `text` (settings from `sampling`, its text ignored), remembered. Ctrl-C
        cancels on the appliance, then re-raises KeyboardInterrupt: `last.done` is set when the appliance
        confirmed the cancel, None when a second Ctrl-C cut the wait short."""
        if not self.history:
            self.reset()
        self.dropped, self.restarted = 0, ""
        try:
            result = self._turn(text, sampling, on_token)
        except SessionGone:
            self.restarted = "the appliance no longer had this conversation (expired, evicted or restarted)"
            result = self._turn(text, sampling, on_token, restart=True)
        except RemoteError as exc:
            if exc.code != p.ErrorCode.CONTEXT_FULL or not self.messages:
                raise
            self.restarted = "the conversation filled the model's context"
            self.messages = self.messages[len(self.messages) // 2:]   # keep the recent half
            result = self._turn(text, sampling, on_token, restart=True)
        self.messages += [Message("user", text), Message("assistant", result.text.strip())]
        return result

    def _turn(self, text: str, sampling: p.Prompt, on_token: Callable[[p.Token], None] | None, *,
              restart: bool = False) -> Generation:
        if restart:
            self.client.reset()
        if self.client.conversing:
            prompt_text, append = text, True
        else:
            turns = [*([Message("system", self.system)] if self.system else []), *self.messages,
                     Message("user", text)]
            kept, self.dropped = fit(turns)
            prompt_text, append = carried(kept), False
        request = p.Prompt(prompt_text, n_predict=sampling.n_predict, temperature=sampling.temperature,
                           top_k=sampling.top_k, top_p=sampling.top_p, seed=sampling.seed, append=append, chat=True)
        stream = self.client.stream(request)
        self.last = stream.generation
        result = self.client.collect(stream.generation, on_token=on_token)
        self.client.conversing = result.done is not None and result.done.reason != p.DoneReason.ENGINE_ERROR
        return result
