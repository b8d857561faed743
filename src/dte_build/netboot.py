"""The appliance on the network: firmware options that turn the token-protocol server on (`dte build --net
--key KEYFILE`), and QEMU with user networking that forwards a UDP port on 127.0.0.1 to it (`dte run --net`).

Library first: `network_options(board, options, key)` for builds, `NetAppliance` to boot one in the background,
wait until it serves (`dte: net ready ...`), talk to it on `127.0.0.1:port`, and stop it.

QEMU user networking runs with `restrict=off`: libslirp's `udp_input` drops every UDP datagram a restricted guest
sends (`if (slirp->restricted) goto bad;`), answers to a host forward included, so a restricted appliance could
never reply. Reach stays limited to this machine because the only host forward is bound to 127.0.0.1 and the
firmware never opens a connection or sends anything that is not an answer (docs/protocol.md).
"""

from __future__ import annotations

import dataclasses
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import qemu
from .board import Board, load_board
from .errors import DteError
from .protocol import c_network_defines
from .toolchain import FirmwareOptions

READY_WORD = "net"          # `dte: net ready ip=... port=... mac=...`
LOCALHOST = "127.0.0.1"


def network_options(board: Board, options: FirmwareOptions, key: bytes | None) -> FirmwareOptions:
    """`options` with the network server compiled in: the board's [network] addresses and the appliance key."""
    if key is None:
        raise DteError("--net needs the appliance key: an appliance never serves unauthenticated",
                       "make one with `dte keygen -o KEYFILE` and pass `--key KEYFILE`")
    defines = dict(options.extra_defines)
    defines.update(c_network_defines(board.network, key))
    defines["DTE_NET_ENABLED"] = "1"
    return dataclasses.replace(options, extra_defines=defines)


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOCALHOST, 0))
        return int(s.getsockname()[1])


def net_qemu_args(host_port: int, guest_port: int) -> list[str]:
    """User networking with one UDP forward 127.0.0.1:host_port -> the guest's guest_port, on virtio-net-pci
    (no option ROM: OVMF does not try to network-boot it)."""
    return ["-netdev", f"user,id=n0,restrict=off,hostfwd=udp:{LOCALHOST}:{host_port}-:{guest_port}",
            "-device", "virtio-net-pci,netdev=n0,romfile="]


def is_ready_line(line: str) -> bool:
    parsed = qemu.parse_status_line(line)
    return parsed is not None and parsed[0] == READY_WORD and "ready" in parsed[1]


class NetAppliance:
    """An image booted under QEMU in a background thread with its protocol port forwarded to 127.0.0.1:port.

        with NetAppliance(image, timeout=300) as app:
            app.wait_ready(120)
            client.generate_remote(app.host, app.port, key, ...)
    """

    def __init__(self, image: Path, *, board: Board | None = None, port: int | None = None, smp: int = 1,
                 memory_mib: int | None = None, timeout: float = qemu.DEFAULT_TIMEOUT,
                 on_line: Callable[[str], None] | None = None, extra_args: tuple[str, ...] = ()) -> None:
        self.board = board or load_board(qemu.DEFAULT_BOARD)
        self.image = Path(image)
        self.host = LOCALHOST
        self.port = port or free_udp_port()
        self.guest_port = int(self.board.network["port"])
        self.timeout = timeout
        self.ready: dict[str, Any] | None = None     # the `dte: net ready` fields once seen
        self.result: qemu.RunResult | None = None
        self.error: BaseException | None = None
        self._on_line = on_line
        self._ready_event = threading.Event()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._lines: list[str] = []
        self._config = qemu.make_config(self.board, smp=smp, memory_mib=memory_mib, nic=True,
                                        extra_args=[*net_qemu_args(self.port, self.guest_port), *extra_args])
        self._thread = threading.Thread(target=self._run, name="dte-net-qemu", daemon=True)

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def console(self) -> str:
        return "\n".join(self._lines)

    def start(self) -> NetAppliance:
        self._thread.start()
        return self

    def _line(self, line: str) -> None:
        self._lines.append(line)
        if self._on_line is not None:
            self._on_line(line)
        if self.ready is None and is_ready_line(line):
            parsed = qemu.parse_status_line(line)
            self.ready = parsed[1] if parsed else {}
            self._ready_event.set()

    def _run(self) -> None:
        try:
            self.result = qemu.run_config(self.image, self._config, timeout=self.timeout, on_line=self._line,
                                          stop_event=self._stop, grace=0.5)
        except BaseException as exc:   # handed to the waiting thread
            self.error = exc
        finally:
            self._done.set()
            self._ready_event.set()

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        """Block until the firmware printed `dte: net ready`; DteError when it exited or failed first."""
        self._ready_event.wait(timeout)
        if self.error is not None:
            raise self.error
        if self.ready is None:
            tail = "\n".join(self._lines[-15:])
            why = "QEMU exited" if self._done.is_set() else f"not within {timeout:.0f} s"
            raise DteError(f"the appliance never reported `dte: net ready` ({why})",
                           "was the image built with --net --key? console tail:\n" + tail)
        return self.ready

    def wait(self, timeout: float | None = None) -> qemu.RunResult | None:
        """Block until QEMU ended (its own exit, the run's timeout, or stop())."""
        self._done.wait(timeout)
        return self.result

    def stop(self) -> qemu.RunResult | None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        return self.result

    def __enter__(self) -> NetAppliance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

