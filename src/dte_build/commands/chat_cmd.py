"""`dte chat`: talk to an appliance — waits until it answers, remembers the conversation, streams the answers, edits
lines and keeps their history (prompt_toolkit); Ctrl-C cancels an answer. With stdin not a terminal it reads one
turn per line and prints only the replies on stdout."""

from __future__ import annotations

import codecs
import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import click

from .. import protocol as p
from ..client import Client, Generation, parse_endpoint
from ..console import err, info, warn
from ..conversation import Conversation
from ..errors import DteError
from . import options
from .net_cmd import _key_option

HELP = "/reset forgets the conversation, /system TEXT sets a system message (and resets), /quit exits"
HISTORY_FILE = Path("~/.local/state/dte/chat_history")


def wait_until_up(client: Client, wait: float) -> float:
    """Ping until the appliance answers (for at most `wait` seconds); its round trip in seconds."""
    deadline = time.monotonic() + wait
    status = err.status(f"waiting for the appliance (up to {wait:.0f} s)...") if err.is_terminal and wait > 0 \
        else contextlib.nullcontext()
    with status:
        while True:
            try:
                return _ping_once(client, min(2.0, max(0.2, deadline - time.monotonic())) if wait > 0
                                  else client.timeout)
            except DteError as exc:
                if time.monotonic() >= deadline:
                    raise DteError(f"the appliance does not answer: {exc.message}",
                                   "is it running (`dte run --net`), and are the address and key right? "
                                   "--wait S waits longer") from None
                time.sleep(0.25)


def _ping_once(client: Client, timeout: float) -> float:
    saved = client.timeout
    client.timeout = timeout
    try:
        return client.ping()
    finally:
        client.timeout = saved


class _Printer:
    """Writes token pieces to stdout as UTF-8 text as soon as characters are complete."""

    def __init__(self) -> None:
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.started = False

    def __call__(self, token: p.Token) -> None:
        text = self.decoder.decode(token.piece)
        if not self.started:
            text = text.lstrip()   # the reply follows "Assistant:"; its leading space is the template's
            self.started = bool(text)
        sys.stdout.write(text)
        sys.stdout.flush()

    def end(self) -> None:
        sys.stdout.write(self.decoder.decode(b"", final=True) + "\n")
        sys.stdout.flush()


def _lines_from_terminal() -> Iterator[str]:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    path = HISTORY_FILE.expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        history: FileHistory | InMemoryHistory = FileHistory(str(path))
    except OSError:
        history = InMemoryHistory()
    session: PromptSession[str] = PromptSession(history=history)
    while True:
        try:
            yield session.prompt("> ")
        except (EOFError, KeyboardInterrupt):   # Ctrl-D, or Ctrl-C at the prompt: leave
            return


def _lines_from_pipe() -> Iterator[str]:
    for line in sys.stdin:
        yield line.rstrip("\r\n")


def _command(line: str, conversation: Conversation, say: Callable[[str], None]) -> bool:
    """Handles a /command; False for /quit."""
    word, _, rest = line.partition(" ")
    if word in ("/quit", "/exit"):
        return False
    if word == "/reset":
        conversation.reset()
        say("[conversation forgotten]")
    elif word == "/system":
        if rest.strip():
            conversation.reset(system=rest.strip())
            say("[system message set; conversation forgotten]")
        else:
            say(f"[system message: {conversation.system!r}]" if conversation.system else "[no system message]")
    else:
        say(f"[unknown command {word}; {HELP}]")
    return True


@click.command()
@click.argument("endpoint", metavar="HOST:PORT")
@_key_option
@options.sampling
@options.system
@click.option("--history/--no-history", default=True, show_default=True,
              help="Remember the conversation (off: every line is answered on its own).")
@click.option("--wait", default=120.0, show_default=True, type=click.FloatRange(0),
              help="Seconds to wait for the appliance to answer PING before giving up (0: do not wait).")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for each answer frame.")
def chat(endpoint: str, key_file: str, n_predict: int, temp: float, top_k: int, top_p: float, seed: int,
         system: str | None, history: bool, wait: float, timeout: float) -> None:
    """Talk to an appliance; answers stream as they are generated, and the conversation is remembered.

    \b
    Lines are edited and recalled with the arrow keys (history in ~/.local/state/dte/chat_history).
    /reset forgets the conversation, /system TEXT sets a system message, /quit (or Ctrl-D) exits.
    Ctrl-C cancels the answer being generated; Ctrl-C at the prompt (or a second one) exits.
    With stdin not a terminal: one turn per input line, only the replies on stdout.
    """
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    host, port = parse_endpoint(endpoint)
    sampling = p.Prompt(" ", n_predict=max(1, n_predict), temperature=temp, top_k=top_k, top_p=top_p, seed=seed)
    say = info if interactive else (lambda message: None)
    with Client(host, port, p.load_key(key_file), timeout=timeout) as client:
        rtt = wait_until_up(client, wait)
        # system None: the appliance's own (its persona's, compiled in) is the only one
        conversation = Conversation(client, system=system or "", history=history)
        say(f"connected to {endpoint} (rtt {rtt * 1000:.1f} ms); {HELP}; Ctrl-C cancels an answer")
        for line in (_lines_from_terminal() if interactive else _lines_from_pipe()):
            if not line.strip():
                continue
            if line.startswith("/") and not line.startswith("//"):
                if not _command(line, conversation, info):
                    break
                continue
            text = line[1:] if line.startswith("//") else line
            printer = _Printer()
            try:
                result = conversation.ask(text, sampling, on_token=printer)
            except KeyboardInterrupt:
                if conversation.last is None or conversation.last.done is None:
                    raise   # a second Ctrl-C before the appliance confirmed: leave
                printer.end()
                info("[cancelled]")
                continue
            printer.end()
            if conversation.restarted:
                warn(f"{conversation.restarted}: started it over from the text of the conversation")
            if conversation.dropped:
                warn(f"the conversation outgrew one request ({p.MAX_PROMPT_TEXT} bytes): "
                     f"left out its {conversation.dropped} oldest messages")
            if interactive:
                _report(result)


def _report(result: Generation) -> None:
    data = result.to_json()
    done = result.done
    reused = f", {done.reused_tokens} reused" if done is not None and done.reused_tokens else ""
    new = done.prompt_tokens if done is not None else len(result.prompt_ids)
    err.print(f"[{len(result.ids)} tokens, {data['tok_per_s']:.1f} tok/s; prompt {new} evaluated{reused}]",
              style="dim", markup=False)
