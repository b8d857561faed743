"""`dte serve`: the OpenAI-compatible HTTP gateway in front of appliances (library: dte_build.serve)."""

from __future__ import annotations

import ipaddress
import logging
import socket
import sys

import click

from .. import protocol as p
from ..client import parse_endpoint
from ..console import info, warn
from ..errors import DteError
from .net_cmd import _key_option


def listening_socket(family: int = socket.AF_INET) -> socket.socket:
    """A TCP socket for uvicorn's `sockets=`: made with IPPROTO_TCP (asyncio sets TCP_NODELAY on accepted
    connections only when the protocol says TCP; with proto 0, Nagle holds each SSE chunk written after the headers
    until the client's delayed ACK, ~40 ms) and TCP_NODELAY set on it as well."""
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _listen_address(listen: str) -> tuple[str, int]:
    """'HOST:PORT' (port 0: any free one), '[V6]:PORT', or 'HOST' (port 8080)."""
    host, sep, port = listen.rpartition(":")
    if not sep or "]" in port:
        return listen.strip("[]"), 8080
    if not host or not port.isdigit() or int(port) > 65535:
        raise DteError(f"bad --listen {listen!r}", "give it as HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]"), int(port)


def _listen_socket(listen: str) -> socket.socket:
    host, port = _listen_address(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = listening_socket(family)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise DteError(f"cannot listen on {listen}: {exc.strerror}",
                       "pick another port with --listen HOST:PORT (port 0: any free one)") from None
    sock.listen(1024)
    return sock


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@click.command()
@click.option("--appliance", "appliances", multiple=True, required=True, metavar="HOST:PORT",
              help="An appliance's token-protocol address (repeat for several; requests go to the least busy, "
                   "and move to another when one is down).")
@_key_option
@click.option("--listen", default="127.0.0.1:8080", show_default=True, metavar="HOST:PORT",
              help="Where to accept HTTP (port 0: a free one). Anything but loopback needs --api-key.")
@click.option("--api-key", envvar="DTE_API_KEY", default=None, metavar="TOKEN",
              help="Require 'Authorization: Bearer TOKEN' on /v1/ (or set DTE_API_KEY).")
@click.option("--model-name", default=None,
              help="Serve every appliance's model under this id (default: the name each appliance reports for "
                   "the model it runs, e.g. dte-tiny-q8_0).")
@click.option("--max-body", default=256 << 10, show_default=True, help="Largest request body in bytes (else 413).")
@click.option("--timeout", default=30.0, show_default=True,
              help="Seconds without an answer before an appliance counts as down.")
@click.option("--slots", default=1, show_default=True, type=click.IntRange(1, 5),
              help="Generations in flight per appliance (it runs one and queues up to 4); others wait here.")
@click.option("--sessions", default=8, show_default=True, type=click.IntRange(1, 15),
              help="Conversations kept open per appliance (it holds 16 sessions; the rest serve other clients).")
@click.option("--max-waiting", default=256, show_default=True, type=click.IntRange(0),
              help="Requests waiting for an appliance before new ones get 429.")
@click.option("--log-requests", is_flag=True,
              help="Print a line on stderr per completion request: route, appliance, finish reason, token counts "
                   "and time, or the HTTP status of a refused one.")
def serve(appliances: tuple[str, ...], key_file: str, listen: str, api_key: str | None, model_name: str | None,
          max_body: int, timeout: float, slots: int, sessions: int, max_waiting: int, log_requests: bool) -> None:
    """Serve the OpenAI HTTP API (/v1/models, /v1/chat/completions, /v1/completions) from appliances.

    \b
    Any OpenAI client works against it, e.g.
      dte serve --appliance 127.0.0.1:7777 --key appliance.key
      curl -s http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' \\
           -d '{"messages": [{"role": "user", "content": "Hello"}]}'
    GET /health answers 200 while an appliance answers PING (for routers). Stop with Ctrl-C.
    """
    import uvicorn

    from ..serve import ServeConfig, create_app

    key = p.load_key(key_file)
    endpoints = [parse_endpoint(a) for a in appliances]
    sock = _listen_socket(listen)
    host, port = sock.getsockname()[:2]
    if not _is_loopback(host) and not api_key:
        sock.close()
        raise DteError(f"--listen {listen} is reachable from other machines and no --api-key is set",
                       "pass --api-key TOKEN (or DTE_API_KEY), or listen on 127.0.0.1")
    config = ServeConfig(appliances=endpoints, key=key, model=model_name, api_key=api_key, max_body=max_body,
                         timeout=timeout, slots=slots, max_waiting=max_waiting, sessions=sessions)
    app = create_app(config)
    if log_requests:
        _print_request_log()
    for appliance in app_pool(app):
        try:
            rtt = appliance.ping_sync()
            info(f"dte serve: appliance {appliance.endpoint} answers (rtt {rtt * 1000:.1f} ms)")
        except DteError as exc:
            warn(f"appliance {appliance.endpoint} does not answer yet ({exc.message}); serving anyway")
    shown = f"[{host}]" if ":" in host else host
    named = f"model {model_name!r}" if model_name else "each appliance's own model"
    info(f"dte serve: listening on http://{shown}:{port}/v1 ({named}"
         f"{', bearer auth' if api_key else ''}); Ctrl-C stops")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5))
    server.run(sockets=[sock])


def _print_request_log() -> None:
    """The gateway's request log (logger `dte_build.serve`, INFO) on stderr, a line per completion request."""
    from ..serve.app import log

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("dte serve: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)


def app_pool(app: object) -> list:
    """The appliances of an app made by create_app (through the auth middleware when there is one)."""
    inner = getattr(app, "app", app)
    return inner.state.gateway.pool.appliances
