"""`dte run`: boot an image under QEMU + OVMF; the generated text on stdout, a short summary on stderr.

Output (docs/cli.md): stdout carries the result — the text the appliance generated, or with --json one object
(docs/schemas/run.json). stderr carries a phase indicator while it boots (on a terminal) and a four-line summary
(model, load, speed, boot-to-first-token); `-v` streams the whole console there instead, `--quiet` nothing.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..board import Board, load_board
from ..child import signals_as_interrupt
from ..console import err, info
from ..errors import DteError
from ..qemu import (
    DEFAULT_TIMEOUT,
    DRIVES,
    RC_FAIL,
    RC_OK,
    RC_PANIC,
    SECURE_BOOT_REFUSAL,
    RunResult,
    check_bootable,
    check_smp,
    parse_status_line,
    run_image,
)
from . import options

NET_TIMEOUT = 24 * 3600.0   # --net without --timeout: serve until Ctrl-C, but never leave QEMU behind for ever
TAIL_LINES = 25             # console lines shown when a run fails without -v
PHASES = {"banner": "firmware started", "exit_boot_services": "boot services exited", "nvme": "reading the weights",
          "weights": "weights loaded", "model": "model opened", "prompt": "reading the prompt",
          "generate": "generating", "net": "network up"}


@click.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@options.board(help="Board whose [qemu] settings to use (machine, CPU, memory) and whose CPU count caps --smp.")
@click.option("--smp", type=int, default=1, show_default=True, help="Virtual CPUs (1 to the board's cores).")
@click.option("--memory", "memory_mib", type=click.IntRange(min=64), default=None,
              help="Guest RAM in MiB (default: the board's).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help=f"Kill QEMU after this many seconds (default {DEFAULT_TIMEOUT:.0f}; with --net: run until "
                   f"Ctrl-C, at most {NET_TIMEOUT // 3600:.0f} h).")
@click.option("--net", is_flag=True,
              help="Serve the token protocol: virtio-net on QEMU user networking, the appliance's UDP port "
                   "forwarded from 127.0.0.1 only. Needs an image built with `dte build --net --key KEYFILE`.")
@click.option("--port", "host_port", type=click.IntRange(1, 65535), default=None,
              help="With --net: the 127.0.0.1 UDP port to forward (default: a free one).")
@click.option("--drive", type=click.Choice(DRIVES), default="nvme", show_default=True, help="How the disk attaches.")
@click.option("--qemu-arg", "qemu_args", multiple=True, metavar="ARG", help="Extra QEMU argument (repeatable).")
@click.option("--secure-boot", is_flag=True,
              help="Boot OVMF's Secure Boot build with the snakeoil keys enrolled (SMM on): only an image built with "
                   "--sign-key/--sign-cert /usr/share/ovmf/PkKek-1-snakeoil.{key,pem} starts.")
@click.option("--tpm", is_flag=True, help="Attach a software TPM 2.0 (swtpm, fresh state per run) for measured boot.")
@options.json_output
@options.verbose
@click.option("--quiet", "-q", is_flag=True, help="Print nothing on stderr but errors.")
def run(image: Path, board_name: str, smp: int, memory_mib: int | None, timeout: float | None, net: bool,
        host_port: int | None, drive: str, qemu_args: tuple[str, ...], as_json: bool, verbose: bool, quiet: bool,
        secure_boot: bool = False, tpm: bool = False) -> None:
    """Boot IMAGE in QEMU q35 + OVMF (TCG unless KVM really works): the text it generates goes to stdout, a
    summary (model, load speed, tokens/s, boot to first token) to stderr.

    \b
    -v streams the firmware's whole console (`dte: key=value` status lines) to stderr;
    --json prints every status line and the summary as one JSON object on stdout.
    Exits 0 only when the firmware reported `dte: exit status=ok` (QEMU rc 33); a file
    that is not a dte image is refused before QEMU starts.
    \b
    With --net the appliance keeps serving after its boot prompt: stdout says where to
    connect (127.0.0.1:PORT) and when it is ready; stop it with Ctrl-C or --timeout.
    Example:  dte run --net --port 7777 dte_net.img   then, in a second terminal,
              dte chat 127.0.0.1:7777 --key appliance.key
    """
    if net and drive != "nvme":
        raise DteError("--net boots from NVMe only", "drop --drive")
    board = load_board(board_name)
    check_smp(board, smp)
    report = check_bootable(image)
    view = _View(verbose=verbose, quiet=quiet, as_json=as_json)
    with signals_as_interrupt(), view:
        if net:
            _run_net(image, board, smp, memory_mib, timeout or NET_TIMEOUT, host_port, qemu_args, view, as_json)
            return
        timeout = timeout or DEFAULT_TIMEOUT
        result = run_image(image, board=board, smp=smp, memory_mib=memory_mib, timeout=timeout,
                           extra_args=qemu_args, drive=drive, on_line=view.line, secure_boot=secure_boot, tpm=tpm)
    if as_json:
        click.echo(json.dumps({"schema": options.JSON_SCHEMA_VERSION, "image": str(image),
                               "model": _model_name(report), **result.to_dict()}, indent=2))
    if result.ok:
        if not quiet:
            for line in summary(result, _model_name(report), smp):
                info(line)
        return
    if not verbose and not quiet:
        view.tail(result.console)
    raise DteError(f"run failed: {_why(result, timeout, secure_boot)}",
                   "the console's last lines are above (all of it with -v)", exit_code=2)


def _why(result: RunResult, timeout: float, secure_boot: bool) -> str:
    why = {RC_FAIL: "the firmware reported a failure", RC_PANIC: "the firmware panicked",
           RC_OK: "QEMU exited 33 but the firmware never printed `dte: exit status=ok`"}.get(
        result.rc, f"QEMU exited with code {result.rc}")
    if result.timed_out:
        why = f"timed out after {timeout:.0f} s"
    if secure_boot and "banner" not in result.status and SECURE_BOOT_REFUSAL in result.console:
        why = "the Secure Boot firmware refused the image (Access Denied: unsigned, or signed by a key not in db)"
    panic = result.status.get("panic")
    detail = result.status.get("error", {}).get("text") or (
        "panic " + " ".join(f"{k}={v}" for k, v in panic.items()) if panic else None)
    return why + (f" ({detail})" if detail else "")


def _model_name(report: dict[str, Any]) -> str | None:
    manifest = report.get("manifest")
    model = manifest.get("model") if isinstance(manifest, dict) else None
    name = model.get("name") if isinstance(model, dict) else None
    return name if isinstance(name, str) else None


def summary(result: RunResult, model_name: str | None, smp: int = 1) -> list[str]:
    """The human summary of a finished boot: what ran, how fast it loaded and generated, and how long from power-on
    to the first token (from the firmware's status lines; absent parts are left out)."""
    st = result.status
    lines = [f"dte run: ok in {result.seconds:.1f} s ({result.accel}, {smp} vCPU{'s' if smp > 1 else ''})"]
    model, weights = st.get("model", {}), st.get("weights", {})
    if model or model_name:
        shape = ", ".join(f"{v} {k}" for k, v in (("layers", model.get("layers")), ("embd", model.get("embd")),
                                                     ("vocab", model.get("vocab"))) if v)
        lines.append(f"  model        {model_name or 'unnamed'}" + (f" ({shape})" if shape else ""))
    if weights.get("bytes"):
        lines.append(f"  load         {int(weights['bytes']) / 2**20:.1f} MiB at {weights.get('load_mib_per_s', '?')} "
                     f"MiB/s, verified in {weights.get('verify_ms', '?')} ms")
    gen = st.get("generate", {})
    if "tok_per_s" in gen:
        lines.append(f"  generate     {gen.get('tokens', '?')} tokens at {gen['tok_per_s']} tok/s (prompt: "
                     f"{gen.get('prompt_tokens', '?')} tokens at {gen.get('prompt_tok_per_s', '?')} tok/s)")
    first = st.get("first_token", {})
    if "ms" in first:
        platform = first.get("platform_ms")
        lines.append(f"  first token  {int(first['ms']) / 1000:.1f} s after the firmware started"
                     + (f" (UEFI platform before it: {int(platform) / 1000:.1f} s)" if platform else ""))
    return lines


class _View:
    """Where console lines go: all of them to stderr with -v; otherwise the generated text to stdout (unless
    --json) and a phase indicator on stderr when it is a terminal."""

    def __init__(self, *, verbose: bool, quiet: bool, as_json: bool) -> None:
        self.verbose, self.quiet, self.as_json = verbose, quiet, as_json
        self._status: Any = None

    def __enter__(self) -> _View:
        if not self.verbose and not self.quiet and err.is_terminal:
            self._status = err.status("booting (UEFI firmware)...")
            self._status.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.__exit__(None, None, None)
            self._status = None

    def line(self, line: str) -> None:
        # Before ExitBootServices OVMF mirrors the firmware's screen copy of each status line ("dte ...") onto the
        # same serial port that already carried "dte: ..."; show each line once.
        if line.startswith("dte "):
            return
        if self.verbose:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        parsed = parse_status_line(line)
        if parsed is None:
            return
        word, fields = parsed
        if word == "text" and not self.as_json:
            sys.stdout.write(fields.get("text", "").strip() + "\n")
            sys.stdout.flush()
        elif word in PHASES and self._status is not None:
            self._status.update(f"{PHASES[word]}...")

    def say(self, message: str) -> None:
        """A line for people on stderr (not with --quiet)."""
        if not self.quiet:
            info(message)

    def tail(self, console: str) -> None:
        lines = [ln for ln in console.splitlines() if not ln.startswith("dte ")]
        for ln in lines[-TAIL_LINES:]:
            err.print(ln, markup=False, highlight=False, soft_wrap=True)


def _run_net(image: Path, board: Board, smp: int, memory_mib: int | None, timeout: float, host_port: int | None,
             qemu_args: tuple[str, ...], view: _View, as_json: bool) -> None:
    """`dte run --net`: boot, say where and when to connect, serve until Ctrl-C, a signal or the timeout."""
    from ..netboot import NetAppliance

    app = NetAppliance(image, board=board, port=host_port, smp=smp, memory_mib=memory_mib, timeout=timeout,
                       on_line=view.line, extra_args=qemu_args)
    say: Callable[[str], None] = click.echo if not as_json else view.say
    say(f"dte run: connect to {app.endpoint} (UDP, forwarded to the appliance's port {app.guest_port})")
    sys.stdout.flush()
    app.start()
    try:
        ready = app.wait_ready(timeout)
        view.__exit__()
        say(f"dte run: appliance ready at {app.endpoint} (ip={ready.get('ip')} mac={ready.get('mac')} "
            f"nic={ready.get('nic')}); Ctrl-C stops it")
        sys.stdout.flush()
        result = app.wait()
    except KeyboardInterrupt:
        result = app.stop()
        view.say("dte run: stopped")
    finally:
        app.stop()
    if as_json and result is not None:
        click.echo(json.dumps({"schema": options.JSON_SCHEMA_VERSION, **result.to_dict(), "endpoint": app.endpoint},
                              indent=2))
    if result is not None and not result.timed_out and not result.stopped:
        raise DteError(f"the appliance ended (QEMU exit code {result.rc})", "see the console output above",
                       exit_code=2)
