"""What the appliance is sent for an API request.

Protocol version 1 has no conversations: every PROMPT is independent and carries its whole text (one frame, at most
`protocol.MAX_PROMPT_TEXT` bytes); the appliance prefixes BOS and its persona's system line. A completion's prompt
is sent as it is; a chat with a single user message is sent as that message's text (what `dte generate -p TEXT` and
`dte chat` send); a longer conversation is written out one turn per line ("User: ...", "Assistant: ...", a client's
system message first) and ends with "Assistant:" for the model to continue.
"""

from __future__ import annotations

from .. import protocol as p
from .api import ApiError, CompletionRequest, Message
from .backend import Job

ROLE_NAMES = {"system": "System", "user": "User", "assistant": "Assistant"}


def transcript(messages: tuple[Message, ...]) -> str:
    if len(messages) == 1:
        return messages[0].content
    lines = [f"{ROLE_NAMES[m.role]}: {m.content}" for m in messages]
    return "\n".join(lines) + "\nAssistant:"


def job_for(request: CompletionRequest) -> Job:
    text = request.prompt if request.prompt is not None else transcript(request.messages)
    size = len(text.encode("utf-8"))
    if size > p.MAX_PROMPT_TEXT:
        raise ApiError(400, f"the prompt is {size} bytes of UTF-8; the appliance takes at most {p.MAX_PROMPT_TEXT} "
                            "per request", code="context_length_exceeded",
                       param="messages" if request.chat else "prompt")
    if size == 0:
        raise ApiError(400, "the prompt is empty", param="messages" if request.chat else "prompt")
    s = request.sampling
    return Job(p.Prompt(text, n_predict=s.max_tokens, temperature=s.temperature, top_k=s.top_k, top_p=s.top_p,
                        seed=s.seed))
