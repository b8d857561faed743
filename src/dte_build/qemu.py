"""Boot a dte image under QEMU q35 + OVMF, stream its serial console and parse the firmware's status lines.

Every run: a fresh copy of the OVMF variable store in a temp dir, `-nic none` unless a NIC is asked for,
the image as an NVMe disk, isa-debug-exit at 0xf4 (firmware writes 0x10/0x11/0x12 → QEMU rc 33/35/37),
a hard timeout that kills QEMU's whole process group, and QEMU killed by the kernel if dte itself dies (child.py).
KVM only when it really works (probed), TCG otherwise.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .board import Board, load_board
from .child import die_with_parent
from .errors import DteError
from .tpm_sim import swtpm_socket

QEMU_BINARY = "qemu-system-x86_64"
OVMF_PAIRS = (
    (Path("/usr/share/OVMF/OVMF_CODE_4M.fd"), Path("/usr/share/OVMF/OVMF_VARS_4M.fd")),
    (Path("/usr/share/OVMF/OVMF_CODE.fd"), Path("/usr/share/OVMF/OVMF_VARS.fd")),
)
OVMF_SECURE_PAIRS = (   # Debian ovmf: secboot code + VARS with the snakeoil key as PK, KEK and db
    (Path("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"), Path("/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd")),
)
DEBUG_EXIT_IOBASE = 0xF4
RC_OK, RC_FAIL, RC_PANIC = 33, 35, 37          # (value << 1) | 1 for 0x10, 0x11, 0x12
SECURE_BOOT_REFUSAL = "Access Denied"           # OVMF BdsDxe: "failed to load Boot000N ...: Access Denied"
DRIVES = ("nvme", "ide", "virtio")
DEFAULT_TIMEOUT = 300.0
DEFAULT_BOARD = "qemu-q35"

_ESCAPES = re.compile(r"\x1b(\[[0-9;=?]*[A-Za-z]|[()][A-Za-z0-9]|[A-Za-z=>c])")
_STATUS = re.compile(r"^dte: ([a-z_][a-z0-9_]*)(.*)$")
_FIELD = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)(?:=("(?:[^"\\]|\\.)*"|\S*))?')


def strip_escapes(text: str) -> str:
    """Console text without ANSI/VT100 escape sequences and carriage returns."""
    return _ESCAPES.sub("", text).replace("\r", "")


def _unquote(value: str) -> str:
    body = value[1:-1]
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), body)


def parse_status_line(line: str) -> tuple[str, dict[str, Any]] | None:
    """`dte: word k=v k="text" flag` → ("word", {"k": "v", "k": "text", "flag": True}); None for other lines."""
    match = _STATUS.match(line.strip())
    if not match:
        return None
    fields: dict[str, Any] = {}
    rest = match.group(2)
    pos = 0
    while pos < len(rest):
        m = _FIELD.match(rest, pos)
        if not m or m.end() == pos:
            break
        key, value = m.group(1), m.group(2)
        if value is None:
            fields[key] = True
        elif value.startswith('"') and len(value) >= 2:
            fields[key] = _unquote(value)
        else:
            fields[key] = value
        pos = m.end()
    return match.group(1), fields


def workers_checked_in(status: dict[str, dict[str, Any]]) -> int | None:
    """`cpus=N` of the firmware's `dte: smp` summary line (workers that checked in, BSP included); None if absent."""
    value = status.get("smp", {}).get("cpus")
    return int(value) if isinstance(value, str) and value.isdigit() else None


@dataclass(frozen=True)
class QemuConfig:
    """One QEMU invocation. Later features (network, TPM, secure boot) add fields + args in `command()`."""

    machine: str = "q35"
    accel: str = "tcg"
    cpu: str = "max"
    memory_mib: int = 2048
    smp: int = 1
    drive: str = "nvme"
    ovmf_code: Path = OVMF_PAIRS[0][0]
    ovmf_vars_template: Path = OVMF_PAIRS[0][1]
    nic: bool = False
    extra_args: tuple[str, ...] = ()
    nvme_options: str = ""     # appended to -device nvme (e.g. "logical_block_size=4096,physical_block_size=4096")
    secure_boot: bool = False  # SMM + secure pflash: needs the secboot OVMF code (find_ovmf(secure_boot=True))
    tpm: bool = False          # a TPM 2.0 (tpm-tis) backed by swtpm, started per run (tpm_sim.py)

    def disk_args(self, image: Path) -> list[str]:
        if self.drive == "nvme":
            opts = f",{self.nvme_options}" if self.nvme_options else ""
            return ["-drive", f"if=none,id=nvm,file={image},format=raw", "-device", f"nvme,serial=dte0,drive=nvm{opts}"]
        if self.drive == "virtio":
            return ["-drive", f"if=virtio,file={image},format=raw"]
        return ["-drive", f"if=ide,file={image},format=raw"]

    def command(self, image: Path, vars_copy: Path, tpm_socket: Path | None = None) -> list[str]:
        machine = f"{self.machine},smm=on" if self.secure_boot else self.machine
        args = [
            QEMU_BINARY, "-machine", machine, "-accel", self.accel, "-cpu", self.cpu,
            "-m", str(self.memory_mib), "-smp", str(self.smp),
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={self.ovmf_code}",
            "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}",
            *self.disk_args(image),
            "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot",
            "-device", f"isa-debug-exit,iobase={DEBUG_EXIT_IOBASE:#x},iosize=0x04",
        ]
        if not self.nic:
            args += ["-nic", "none"]
        if self.secure_boot:   # OVMF's SMM variable store: only SMM code may write the secure pflash
            args += ["-global", "driver=cfi.pflash01,property=secure,value=on"]
        if tpm_socket is not None:
            args += ["-chardev", f"socket,id=chrtpm,path={tpm_socket}", "-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
                     "-device", "tpm-tis,tpmdev=tpm0"]
        return args + list(self.extra_args)


@dataclass
class RunResult:
    rc: int
    ok: bool
    timed_out: bool
    stopped: bool          # ended early by stop_when (QEMU killed after the grace period)
    seconds: float
    accel: str
    console: str
    status: dict[str, dict[str, Any]] = field(default_factory=dict)   # last line per word
    lines: list[tuple[str, dict[str, Any]]] = field(default_factory=list)   # every status line, in order

    def all(self, word: str) -> list[dict[str, Any]]:
        """Every status line with this word (e.g. all `region` lines)."""
        return [fields for w, fields in self.lines if w == word]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "rc": self.rc, "timed_out": self.timed_out,
                "stopped": self.stopped, "seconds": round(self.seconds, 3),
                "cpus": workers_checked_in(self.status),
                "accel": self.accel, **generation_summary(self), **thermal_summary(self),
                "status": {w: typed_fields(f) for w, f in self.status.items()},
                "lines": [{"word": w, **typed_fields(f)} for w, f in self.lines]}


_DECIMAL = re.compile(r"-?(0|[1-9][0-9]{0,14})")             # at most 15 digits: hashes and build ids stay text
_FLOAT = re.compile(r"-?(0|[1-9][0-9]{0,14})\.[0-9]{1,9}")
_TEXT_KEYS = frozenset({"text", "name", "model", "serial", "vendor", "platform", "ip", "mac", "build", "version"})


def typed_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """A status line's fields for JSON: bare decimal values as numbers (`family=15` -> 15, `tok_per_s=5.22` -> 5.22);
    hex (`0x7`), lists (`1,2,3`), quoted text, flags and long digit strings (hashes, ids) unchanged."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key in _TEXT_KEYS:
            out[key] = value
        elif isinstance(value, str) and _DECIMAL.fullmatch(value):
            out[key] = int(value)
        elif isinstance(value, str) and _FLOAT.fullmatch(value):
            out[key] = float(value)
        else:
            out[key] = value
    return out


def _ids(value: Any) -> list[int]:
    return [int(v) for v in str(value).split(",") if v] if isinstance(value, str) else []


def _number(fields: dict[str, Any], key: str) -> float | int | None:
    value = fields.get(key)
    if not isinstance(value, str):
        return None
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return None


def generation_summary(result: RunResult) -> dict[str, Any]:
    """What the appliance generated, from its status lines (firmware/boot/run_engine.c): prompt and generated
    ids, text, speeds, load throughput, boot-to-first-token parts, the Block I/O benchmark. {} when the firmware
    printed none of it."""
    st = result.status
    out: dict[str, Any] = {}
    if "tokens" in st:
        out["prompt_ids"] = _ids(st.get("prompt", {}).get("ids"))
        out["ids"] = _ids(st["tokens"].get("ids"))
    if "text" in st:
        out["text"] = st["text"].get("text", "")
    gen, weights = st.get("generate", {}), st.get("weights", {})
    picks = [("tok_per_s", gen, "tok_per_s"), ("prompt_tok_per_s", gen, "prompt_tok_per_s"),
             ("load_mib_per_s", weights, "load_mib_per_s"), ("streaming", weights, "streaming")]
    for key, fields, name in picks:
        if (value := _number(fields, name)) is not None:
            out[key] = value
    first = st.get("first_token", {})
    if first:
        out["first_token_ms"] = _number(first, "ms")
        out["boot_ms"] = {k[:-3]: _number(first, k) for k in first if k.endswith("_ms")}
    bench = st.get("bench", {})
    if "blockio_mib_per_s" in bench:
        out["bench"] = {k: _number(bench, k) for k in bench}
    return out


def thermal_summary(result: RunResult) -> dict[str, Any]:
    """The thermal governor's report (firmware/boot/thermal_fw.c): its last state and reading and how many
    decisions it logged; {} when the firmware printed no thermal line."""
    lines = result.all("thermal")
    if not lines:
        return {}
    last = lines[-1]
    out: dict[str, Any] = {"state": last.get("state"), "decisions": sum("workers" in f for f in lines)}
    for key in ("tctl_c", "pkg_w", "workers"):
        if (value := _number(last, key)) is not None:
            out[key] = value
    for key in ("reason", "power_reason"):
        if key in last:
            out[key] = last[key]
    return {"thermal": out}


def kvm_usable() -> bool:
    """True only on a host with real VT-x/AMD-V behind /dev/kvm (not a PVM software hypervisor)."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
        modules = Path("/proc/modules").read_text()
    except OSError:
        return False
    if "kvm_pvm" in modules or Path("/sys/module/kvm_pvm").exists():
        return False
    return re.search(r"^flags\s*:.*\b(vmx|svm)\b", flags, re.MULTILINE) is not None


def find_ovmf(secure_boot: bool = False) -> tuple[Path, Path]:
    """(OVMF code, VARS template): $DTE_OVMF_CODE/$DTE_OVMF_VARS, else the Debian `ovmf` package's files.
    `secure_boot`: the SMM secure-boot build with the snakeoil keys enrolled (PK/KEK/db), $DTE_OVMF_SB_CODE/_VARS."""
    prefix = "DTE_OVMF_SB" if secure_boot else "DTE_OVMF"
    code, vars_ = os.environ.get(f"{prefix}_CODE"), os.environ.get(f"{prefix}_VARS")
    if code and vars_:
        pairs: Sequence[tuple[Path, Path]] = ((Path(code), Path(vars_)),)
    else:
        pairs = OVMF_SECURE_PAIRS if secure_boot else OVMF_PAIRS
    for code_path, vars_path in pairs:
        if code_path.is_file() and vars_path.is_file():
            return code_path, vars_path
    raise DteError(f"OVMF firmware not found (looked for {', '.join(str(c) for c, _ in pairs)})",
                   "install it: apt-get install ovmf (or set DTE_OVMF_CODE and DTE_OVMF_VARS)")


def check_smp(board: Board, smp: int) -> None:
    """Refuse a vCPU count the board does not have: at least 1, at most the workers its firmware wakes."""
    if not 1 <= smp <= board.max_workers:
        raise DteError(f"--smp {smp}: {board.name} has 1 to {board.max_workers} CPUs",
                       f"pass --smp between 1 and {board.max_workers} (boards/{board.name}.toml [cpu])")


def check_bootable(image: Path) -> dict[str, Any]:
    """Refuse, before QEMU starts, a file OVMF would not boot as a dte image (it would sit in the UEFI shell until
    the timeout): it needs a GPT, an EFI System Partition and EFI/BOOT/BOOTX64.EFI on it. Returns inspect's report
    (the manifest names the model)."""
    from .inspect import inspect_image

    hint = "build one with `dte build --board qemu-q35` (`dte inspect IMAGE` shows what this file holds)"
    try:
        report = inspect_image(image)
    except DteError as exc:
        raise DteError(f"{image} is not a dte image: {exc}", hint) from None
    except Exception as exc:   # noqa: BLE001 - a hostile file must give one line, not a traceback
        raise DteError(f"{image} is not a dte image: {type(exc).__name__}: {exc}", hint) from None
    esp = report.get("esp", {})
    if "error" in esp:
        raise DteError(f"{image} is not a dte image: {esp['error']}", hint)
    if "efi" not in report:
        raise DteError(f"{image} is not a dte image: its EFI System Partition has no EFI/BOOT/BOOTX64.EFI", hint)
    return report


def make_config(board: Board | None = None, *, smp: int | None = None, memory_mib: int | None = None,
                drive: str = "nvme", extra_args: Sequence[str] = (), nic: bool = False, secure_boot: bool = False,
                tpm: bool = False) -> QemuConfig:
    """The QemuConfig for a board (default qemu-q35): accelerator probed, OVMF located."""
    if shutil.which(QEMU_BINARY) is None:
        raise DteError(f"{QEMU_BINARY} not found", "install it: apt-get install qemu-system-x86")
    if drive not in DRIVES:
        raise DteError(f"unknown drive type '{drive}'", f"choose one of {', '.join(DRIVES)}")
    board = board or load_board(DEFAULT_BOARD)
    smp = 1 if smp is None else smp
    check_smp(board, smp)
    qemu = board.qemu
    kvm = kvm_usable()
    code, vars_template = find_ovmf(secure_boot)
    return QemuConfig(
        machine=str(qemu.get("machine", "q35")),
        accel="kvm" if kvm else "tcg",
        cpu="host" if kvm else str(qemu.get("cpu", "max")),
        memory_mib=int(memory_mib or qemu.get("memory_mib", 2048)),
        smp=int(smp),
        drive=drive,
        ovmf_code=code,
        ovmf_vars_template=vars_template,
        nic=nic,
        extra_args=tuple(extra_args),
        secure_boot=secure_boot,
        tpm=tpm,
    )


def _pump(stream: Any, on_line: Callable[[str], None], sink: list[str],
          stop_when: Callable[[str], bool] | None, stop: threading.Event) -> None:
    """Read QEMU's stdout line by line (bytes), clean each line, hand it on; set `stop` when asked to."""
    for raw in iter(stream.readline, b""):
        line = strip_escapes(raw.decode("utf-8", errors="replace")).rstrip("\n")
        sink.append(line)
        on_line(line)
        if stop_when is not None and not stop.is_set() and stop_when(line):
            stop.set()


def _wait(proc: subprocess.Popen[bytes], deadline: float, stop: threading.Event, grace: float) -> int | None:
    """QEMU's exit code; None when the deadline passed, or `grace` seconds after `stop` was set."""
    stop_deadline: float | None = None
    while True:
        if stop_deadline is None and stop.is_set():
            stop_deadline = time.monotonic() + grace
        limit = deadline if stop_deadline is None else min(deadline, stop_deadline)
        try:
            return proc.wait(timeout=max(0.0, min(0.2, limit - time.monotonic())))
        except subprocess.TimeoutExpired:
            if time.monotonic() >= limit:
                return None


def run_config(image: Path, config: QemuConfig, *, timeout: float = DEFAULT_TIMEOUT,
               on_line: Callable[[str], None] | None = None, stop_when: Callable[[str], bool] | None = None,
               grace: float = 2.0, stop_event: threading.Event | None = None) -> RunResult:
    """Boot `image` with `config`; returns when QEMU exits or after `timeout` seconds (then it is killed).

    `stop_when(line)` returning True ends the run early: QEMU gets `grace` seconds to exit by itself, then it
    is killed (RunResult.stopped). Use it for boards that halt instead of exiting, or to stop at a line.
    `stop_event`, set from another thread, ends the run the same way (a firmware that serves forever).
    """
    image = Path(image)
    if not image.is_file():
        raise DteError(f"image {image} does not exist", "build one with `dte build --board qemu-q35`")
    start = time.monotonic()
    console: list[str] = []
    callback = on_line or (lambda _line: None)
    stop = stop_event if stop_event is not None else threading.Event()
    with tempfile.TemporaryDirectory(prefix="dte-run-") as tmp, swtpm_socket(Path(tmp), config.tpm) as tpm_socket:
        vars_copy = Path(tmp) / "OVMF_VARS.fd"
        shutil.copyfile(config.ovmf_vars_template, vars_copy)
        proc = subprocess.Popen(config.command(image.resolve(), vars_copy, tpm_socket), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=die_with_parent())
        reader = threading.Thread(target=_pump, args=(proc.stdout, callback, console, stop_when, stop),
                                  daemon=True)
        reader.start()
        try:
            rc = _wait(proc, start + timeout, stop, grace)
        finally:   # timeout, stop or an exception (Ctrl-C): never leave QEMU running
            if proc.poll() is None:
                _kill_group(proc)
                proc.wait()
            reader.join(timeout=5)
            if proc.stdout:
                proc.stdout.close()
    stopped = rc is None and stop.is_set()
    return _result(proc.returncode if rc is None else rc, rc is None and not stopped, stopped,
                   time.monotonic() - start, config.accel, console)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _result(rc: int, timed_out: bool, stopped: bool, seconds: float, accel: str, console: list[str]) -> RunResult:
    lines: list[tuple[str, dict[str, Any]]] = []
    for text in console:
        parsed = parse_status_line(text)
        if parsed is not None:
            lines.append(parsed)
    status: dict[str, dict[str, Any]] = {}
    for word, fields in lines:
        status[word] = fields
    ok = (not timed_out and rc == RC_OK and status.get("exit", {}).get("status") == "ok")
    return RunResult(rc=rc, ok=ok, timed_out=timed_out, stopped=stopped, seconds=seconds, accel=accel,
                     console="\n".join(console), status=status, lines=lines)


def run_image(image: Path, *, board: Board | None = None, smp: int = 1, memory_mib: int | None = None,
              timeout: float = DEFAULT_TIMEOUT, extra_args: Sequence[str] = (), drive: str = "nvme",
              on_line: Callable[[str], None] | None = None,
              stop_when: Callable[[str], bool] | None = None, secure_boot: bool = False,
              tpm: bool = False) -> RunResult:
    """Boot a dte image under QEMU + OVMF and parse its status lines (see RunResult and run_config).

    `ok` is True only when the firmware printed `dte: exit status=ok` and QEMU exited with rc 33.
    """
    if not Path(image).is_file():
        raise DteError(f"image {image} does not exist", "build one with `dte build --board qemu-q35`")
    config = make_config(board, smp=smp, memory_mib=memory_mib, drive=drive, extra_args=extra_args,
                         secure_boot=secure_boot, tpm=tpm)
    return run_config(image, config, timeout=timeout, on_line=on_line, stop_when=stop_when)
