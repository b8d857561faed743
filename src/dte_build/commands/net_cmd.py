"""`dte keygen` and `dte remote ping|stats|attest`: the client side of the token protocol (`dte chat`: chat_cmd)."""

from __future__ import annotations

import json
import secrets

import click
from rich.table import Table

from .. import protocol as p
from ..client import Client, parse_endpoint
from ..console import info, out
from ..errors import DteError
from . import options


@click.command()
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="Key file to create (mode 0600).")
@click.option("--raw", is_flag=True, help="Write the 32 raw bytes instead of 64 hex digits.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def keygen(output: str, raw: bool, force: bool) -> None:
    """Make a new 32-byte appliance key for the token protocol (HMAC-SHA256).

    Compile it into the firmware with `dte build --key KEYFILE`; clients need the same file
    (`dte chat HOST:PORT --key KEYFILE`). Anyone holding it can use and query the appliance.
    """
    path = p.write_key(output, p.generate_key(), raw=raw, overwrite=force)
    info(f"wrote {'raw' if raw else 'hex'} key to {path} (mode 0600)")


def _client(endpoint: str, key_file: str, timeout: float) -> Client:
    host, port = parse_endpoint(endpoint)
    return Client(host, port, p.load_key(key_file), timeout=timeout)


_key_option = click.option("--key", "key_file", required=True, type=click.Path(dir_okay=False),
                           help="The appliance key file (from `dte keygen`).")
_timeout_option = click.option("--timeout", default=10.0, show_default=True,
                               help="Seconds to wait for each answer.")


@click.group()
def remote() -> None:
    """Query a running appliance over the token protocol: ping, stats, attest."""


@remote.command("ping")
@click.argument("endpoint", metavar="HOST:PORT")
@_key_option
@click.option("--count", "count", type=click.IntRange(min=1), default=3, show_default=True, help="How many PINGs.")
@options.json_output
@_timeout_option
def ping_cmd(endpoint: str, key_file: str, count: int, as_json: bool, timeout: float) -> None:
    """Authenticated round-trip time (not ICMP: this proves the key and the protocol work)."""
    times: list[float] = []
    with _client(endpoint, key_file, timeout) as client:
        for i in range(count):
            times.append(round(client.ping() * 1000, 3))
            if not as_json:
                click.echo(f"pong from {endpoint}: seq={i + 1} time={times[-1]:.2f} ms")
    if as_json:
        click.echo(json.dumps({"schema": options.JSON_SCHEMA_VERSION, "endpoint": endpoint, "rtt_ms": times}))


@remote.command("stats")
@click.argument("endpoint", metavar="HOST:PORT")
@_key_option
@options.json_output
@_timeout_option
def stats_cmd(endpoint: str, key_file: str, as_json: bool, timeout: float) -> None:
    """The appliance's counters: frames served and dropped (malformed, too large, bad tag, replay, ...)."""
    with _client(endpoint, key_file, timeout) as client:
        stats = client.stats()
    if as_json:
        click.echo(json.dumps({"schema": options.JSON_SCHEMA_VERSION, **stats}, indent=2))
        return
    table = Table("counter", "value")
    for name, value in stats.items():
        table.add_row(name, str(value))
    out.print(table)


@remote.command("attest")
@click.argument("endpoint", metavar="HOST:PORT")
@_key_option
@click.option("--nonce", default=None, help="Hex nonce to bind the answer to (default: 32 random bytes).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the attestation blob here.")
@options.json_output
@_timeout_option
def attest_cmd(endpoint: str, key_file: str, nonce: str | None, output: str | None, as_json: bool,
               timeout: float) -> None:
    """Ask the appliance for its attestation (what it measured at boot), bound to a fresh nonce."""
    try:
        nonce_bytes = bytes.fromhex(nonce) if nonce is not None else secrets.token_bytes(32)
    except ValueError:
        raise DteError(f"nonce {nonce!r} is not hex", "give an even number of hex digits") from None
    with _client(endpoint, key_file, timeout) as client:
        blob = client.attest(nonce_bytes)
    if output:
        with open(output, "wb") as fh:
            fh.write(blob)
    if as_json:
        click.echo(json.dumps({"schema": options.JSON_SCHEMA_VERSION, "nonce": nonce_bytes.hex(),
                               "attestation": blob.hex()}, indent=2))
    else:
        click.echo(f"nonce {nonce_bytes.hex()}\nattestation ({len(blob)} bytes) {blob.hex()}")
