"""What the appliance is sent for an API request: a completion's prompt as it is, a chat's messages as the
conversation transcript (`dte_build.conversation.transcript`, the same text `dte chat` sends; docs/serve.md)."""

from __future__ import annotations

from .. import protocol as p
from ..conversation import transcript
from .api import ApiError, CompletionRequest
from .backend import Job


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
