"""`dte run`: boot an image under QEMU + OVMF and report what the firmware said."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import click

from ..board import Board, load_board
from ..console import err
from ..errors import DteError
from ..qemu import DEFAULT_TIMEOUT, DRIVES, RC_FAIL, RC_OK, RC_PANIC, SECURE_BOOT_REFUSAL, run_image

NET_TIMEOUT = 24 * 3600.0   # --net without --timeout: serve until Ctrl-C, but never leave QEMU behind for ever


@click.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--board", "board_name", default="qemu-q35", show_default=True, metavar="NAME",
              help="Board whose [qemu] settings to use (machine, CPU, memory).")
@click.option("--smp", type=int, default=1, show_default=True, help="Virtual CPUs.")
@click.option("--memory", "memory_mib", type=int, default=None, help="Guest RAM in MiB (default: the board's).")
@click.option("--timeout", type=float, default=None,
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
@click.option("--json", "as_json", is_flag=True, help="Print the parsed status lines as JSON to stdout.")
@click.option("--quiet", is_flag=True, help="Do not stream the console to stderr.")
def run(image: Path, board_name: str, smp: int, memory_mib: int | None, timeout: float | None, net: bool,
        host_port: int | None, drive: str, qemu_args: tuple[str, ...], as_json: bool, quiet: bool,
        secure_boot: bool = False, tpm: bool = False) -> None:
    """Boot IMAGE in QEMU q35 + OVMF (TCG unless KVM really works) and stream its console.

    \b
    Exits 0 only when the firmware reported `dte: exit status=ok` (QEMU rc 33);
    a firmware failure (rc 35), panic (rc 37) or timeout exits non-zero.
    \b
    With --net the appliance keeps serving after its boot prompt: stdout says where to
    connect (127.0.0.1:PORT) and when it is ready; stop it with Ctrl-C or --timeout.
    Example:  dte run --net --port 7777 dte_boot.img   then   dte chat 127.0.0.1:7777 --key KEYFILE
    """
    board = load_board(board_name)

    def show(line: str) -> None:
        # Before ExitBootServices OVMF mirrors the firmware's screen copy of each status line ("dte ...") onto the
        # same serial port that already carried "dte: ..."; show each line once.
        if not quiet and not line.startswith("dte "):
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    if net:
        if drive != "nvme":
            raise DteError("--net boots from NVMe only", "drop --drive")
        _run_net(image, board, smp, memory_mib, timeout or NET_TIMEOUT, host_port, qemu_args, show, as_json)
        return
    timeout = timeout or DEFAULT_TIMEOUT
    result = run_image(image, board=board, smp=smp, memory_mib=memory_mib, timeout=timeout,
                       extra_args=qemu_args, drive=drive, on_line=show, secure_boot=secure_boot, tpm=tpm)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    if result.ok:
        err.print(f"dte run: ok ({result.seconds:.1f} s, {result.accel})", markup=False)
        return
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
    raise DteError(f"run failed: {why}" + (f" ({detail})" if detail else ""),
                   "see the console output above", exit_code=2)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _run_net(image: Path, board: Board, smp: int, memory_mib: int | None, timeout: float, host_port: int | None,
             qemu_args: tuple[str, ...], show: Callable[[str], None], as_json: bool) -> None:
    """`dte run --net`: boot, say where and when to connect, serve until Ctrl-C or the timeout."""
    from ..netboot import NetAppliance

    app = NetAppliance(image, board=board, port=host_port, smp=smp, memory_mib=memory_mib, timeout=timeout,
                       on_line=show, extra_args=qemu_args)
    click.echo(f"dte run: connect to {app.endpoint} (UDP, forwarded to the appliance's port {app.guest_port})")
    sys.stdout.flush()
    previous = signal.signal(signal.SIGTERM, _interrupt)   # `kill` stops QEMU too, like Ctrl-C
    app.start()
    try:
        ready = app.wait_ready(timeout)
        click.echo(f"dte run: appliance ready at {app.endpoint} (ip={ready.get('ip')} mac={ready.get('mac')} "
                   f"nic={ready.get('nic')}); Ctrl-C stops it")
        sys.stdout.flush()
        result = app.wait()
    except KeyboardInterrupt:
        result = app.stop()
        err.print("dte run: stopped (Ctrl-C)", markup=False)
    finally:
        app.stop()
        signal.signal(signal.SIGTERM, previous)
    if as_json and result is not None:
        click.echo(json.dumps({**result.to_dict(), "endpoint": app.endpoint}, indent=2))
    if result is not None and not result.timed_out and not result.stopped:
        raise DteError(f"the appliance ended (QEMU exit code {result.rc})", "see the console output above",
                       exit_code=2)
