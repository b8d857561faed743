"""The C toolchain: find clang/lld, build the firmware (BOOTX64.EFI) for a board, check it, build hosted libraries.

Firmware: every file of `firmware/sources.toml` [common] + [firmware] is compiled freestanding for the UEFI
(Windows-style PE/COFF) target and linked by lld-link into a PE32+ EFI application. Files under `boot/` and
`lib/` are compiled for baseline x86-64: they run before the firmware enables AVX (OVMF leaves CR4.OSXSAVE
clear) and must be able to report a wrong CPU on any x86-64. Everything else (engine, drivers) is compiled
for the board's `-march`.

Reproducible: the build id is a hash of every firmware source byte, the board file, the options and the
compiler flags; lld-link runs with /Brepro, so the same inputs give a byte-identical EFI file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import time
import tomllib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from . import __version__, defaults
from .board import Board
from .chat_template import ChatShape, c_defines
from .errors import DteError
from .paths import FIRMWARE_DIR, LINKER_DIR, build_root

LLVM_VERSION = 19
LLVM_DIRS: list[Path] = [Path(f"/usr/lib/llvm-{LLVM_VERSION}/bin")]
INSTALL_HINT = f"install it: apt-get install clang-{LLVM_VERSION} lld-{LLVM_VERSION}"
BASELINE_MARCH = "x86-64"
BASELINE_DIRS = ("boot/", "lib/")
FIRMWARE_TARGET = "x86_64-unknown-windows"
FIRMWARE_CFLAGS = (
    "-ffreestanding", "-fshort-wchar", "-mno-red-zone", "-fno-stack-protector", "-mno-stack-arg-probe",
    "-fno-builtin", "-std=c11", "-Wall", "-Wextra", "-Werror", "-O2", "-mno-incremental-linker-compatible",
)
HOSTED_CFLAGS = ("-std=c11", "-O2", "-fPIC", "-shared", "-march=x86-64-v3", "-Wall", "-Wextra", "-Werror",
                 "-pthread")
LINK_RESPONSE_FILE = LINKER_DIR / "efi-app.rsp"
EFI_NAME = "BOOTX64.EFI"
PE_SUBSYSTEM_EFI_APPLICATION = 10


@dataclass(frozen=True)
class Toolchain:
    clang: str
    lld_link: str
    version: str   # first line of `clang --version`


def _find_tool(names: Sequence[str], env_var: str) -> str | None:
    explicit = os.environ.get(env_var)
    if explicit:
        return explicit if Path(explicit).is_file() else None
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    for directory in LLVM_DIRS:
        for name in names:
            candidate = directory / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return None


def find_clang() -> str:
    """Path of clang (clang-19, /usr/lib/llvm-19/bin/clang or clang; $DTE_CLANG overrides)."""
    clang = _find_tool([f"clang-{LLVM_VERSION}", "clang"], "DTE_CLANG")
    if clang is None:
        searched = ", ".join([f"clang-{LLVM_VERSION}", "clang"] + [str(d / "clang") for d in LLVM_DIRS])
        raise DteError(f"clang not found (looked for {searched} and $DTE_CLANG)", INSTALL_HINT)
    return clang


def find_toolchain() -> Toolchain:
    """clang + lld-link, or a DteError saying exactly which is missing and how to install it."""
    clang = find_clang()
    lld = _find_tool([f"lld-link-{LLVM_VERSION}", "lld-link"], "DTE_LLD_LINK")
    if lld is None:
        searched = ", ".join([f"lld-link-{LLVM_VERSION}", "lld-link"] + [str(d / "lld-link") for d in LLVM_DIRS])
        raise DteError(f"lld-link not found (looked for {searched} and $DTE_LLD_LINK)",
                       f"install it: apt-get install lld-{LLVM_VERSION}")
    out = subprocess.run([clang, "--version"], capture_output=True, text=True, check=False)
    return Toolchain(clang, lld, (out.stdout.splitlines() or ["unknown"])[0])


@dataclass(frozen=True)
class FirmwareOptions:
    """What the firmware is configured with at build time (goes into the generated dte_config.h)."""

    prompt: str = "Hello. I am Deep Tree Echo,"   # a greeting in the persona's voice
    n_predict: int = defaults.N_PREDICT
    n_ctx: int = defaults.N_CTX           # positions of the firmware's KV cache (0: the model's, capped at 4096)
    temperature: float = defaults.TEMPERATURE
    top_k: int = defaults.TOP_K
    top_p: float = defaults.TOP_P
    seed: int = defaults.SEED
    threads: int | None = None            # None: every worker the board allows
    model_sha256: str | None = None
    model_name: str = ""                  # the model's name (its file stem), told to clients in INFO
    extra_defines: dict[str, str] = field(default_factory=dict)
    # Identity (docs/identity.md). persona_sha256 None: build_firmware fills name, hash and system prompt from
    # the board's persona file. identity_strength 0: the sampler's identity stage is off (llama.cpp-identical).
    persona_name: str | None = None
    persona_sha256: str | None = None
    system_prompt: str = ""               # the system message of chat turns (a plain prompt goes as it is)
    identity_strength: float = 0.0
    # Chat (src/dte_build/chat_template.py): the model's template cut into per-role strings (None: plain
    # completion), and whether the boot prompt is a chat turn (system prompt + prompt as the user's message).
    chat: ChatShape | None = None
    boot_chat: bool = False

    def __post_init__(self) -> None:
        if self.n_predict <= 0:
            raise DteError(f"token count must be positive, not {self.n_predict}")
        if not 0 <= self.n_ctx <= 1 << 24:
            raise DteError(f"context size must be 0 (the model's) or 1..16777216 positions, not {self.n_ctx}")
        if not 0.0 <= self.temperature <= 100.0:
            raise DteError(f"temperature must be between 0 and 100, not {self.temperature}")
        if self.top_k < 0:
            raise DteError(f"top-k must be 0 (off) or positive, not {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise DteError(f"top-p must be in (0, 1], not {self.top_p}")
        if not 0 <= self.seed < 2**64:
            raise DteError(f"seed must fit in 64 unsigned bits, not {self.seed}")
        if self.threads is not None and self.threads <= 0:
            raise DteError(f"threads must be positive, not {self.threads}")
        if self.model_sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", self.model_sha256):
            raise DteError(f"model SHA-256 must be 64 lowercase hex digits, not '{self.model_sha256}'")
        if self.persona_sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", self.persona_sha256):
            raise DteError(f"persona SHA-256 must be 64 lowercase hex digits, not '{self.persona_sha256}'")
        if not 0.0 <= self.identity_strength <= 16.0:
            raise DteError(f"identity strength must be between 0 and 16, not {self.identity_strength}")
        if self.boot_chat and self.chat is None:
            raise DteError("a chat boot prompt needs the model's chat template",
                           "build with a model that has tokenizer.chat_template, or without --chat")
        if self.boot_chat and self.system_prompt and self.chat is not None and not self.chat.has_system:
            raise DteError("the model's chat template has no system message, but the persona has a system prompt",
                           "pass --system '' (or a persona without a system: line)")
        for name, value in self.extra_defines.items():
            if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", name):
                raise DteError(f"define name '{name}' must be an upper-case C identifier")
            if "\n" in str(value):
                raise DteError(f"define {name} must be one line")


@dataclass(frozen=True)
class FirmwareBuild:
    efi_path: Path
    build_id: str      # 16 hex digits, derived from every input
    sha256: str
    size: int
    seconds: float
    board: str
    build_dir: Path
    persona_sha256: str = ""      # the identity compiled in (DTE_PERSONA_SHA256)
    identity_strength: float = 0.0
    chat: ChatShape | None = None  # the chat format compiled in (DTE_CHAT_*); None: plain completion
    boot_chat: bool = False        # the boot prompt is a chat turn


def read_source_list(*sections: str) -> list[str]:
    """File names (relative to firmware/) listed in sources.toml under `sections`, in order, no repeats."""
    data = tomllib.loads((FIRMWARE_DIR / "sources.toml").read_text())
    files: list[str] = []
    for section in sections:
        for name in data.get(section, {}).get("files", []):
            if name not in files:
                files.append(name)
    missing = [n for n in files if not (FIRMWARE_DIR / n).is_file()]
    if missing:
        raise DteError(f"firmware/sources.toml lists missing file(s): {', '.join(missing)}",
                       "fix the list or add the files")
    return files


def hosted_sources() -> list[Path]:
    """Absolute paths of [common] + [hosted]: what the hosted engine library is built from."""
    return [FIRMWARE_DIR / n for n in read_source_list("common", "hosted")]


def c_string(text: str) -> str:
    """`text` as a C string literal: UTF-8 bytes, non-printables and quotes escaped (octal, never greedy)."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F and char != "?":   # '?' escaped: no trigraphs
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def _c_float(value: float) -> str:
    return f"{float(value)!r}f"


FIRMWARE_CTX_CAP = 4096
"""Context the firmware allocates when the build asks for the model's (0): like the hosted engine's default cap, so
a 32k-128k training context does not claim the board's memory unasked."""


def firmware_context(n_ctx: int) -> int:
    """DTE_N_CTX for a build's -c/--ctx-size (0: FIRMWARE_CTX_CAP; the engine caps it at the model's own)."""
    return n_ctx if n_ctx > 0 else FIRMWARE_CTX_CAP


def config_header(board: Board, options: FirmwareOptions, build_id: str) -> str:
    """The text of dte_config.h: board, build and generation settings as C macros."""
    regions = " ".join(f'X("{r.name}", {r.size_mib}ULL, {r.min_mib}ULL)' for r in board.regions)
    threads = options.threads if options.threads is not None else 0
    persona = options.persona_sha256 or "0" * 64
    defines: list[tuple[str, str]] = [
        ("DTE_BOARD_NAME", c_string(board.name)),
        ("DTE_BUILD_ID", c_string(build_id)),
        ("DTE_VERSION", c_string(__version__)),
        ("DTE_PLATFORM_QEMU", "1" if board.platform == "qemu" else "0"),
        ("DTE_PLATFORM_METAL", "1" if board.platform == "metal" else "0"),
        ("DTE_VECTOR_BITS", str(board.vector_bits)),
        ("DTE_MAX_WORKERS", str(board.max_workers)),
        ("DTE_USE_SMT", "1" if board.use_smt else "0"),
        ("DTE_REGION_COUNT", str(len(board.regions))),
        ("DTE_REGIONS(X)", regions),
        ("DTE_WEIGHTS_LBA", f"{board.weights_lba}ULL"),
        ("DTE_SECTOR_SIZE", str(board.sector_size)),
        ("DTE_STORAGE_SELECT", c_string(str(board.storage.get("select", "first")))),
        ("DTE_PROMPT", c_string(options.prompt)),
        ("DTE_SYSTEM_PROMPT", c_string(options.system_prompt)),
        ("DTE_N_PREDICT", str(options.n_predict)),
        ("DTE_N_CTX", f"{firmware_context(options.n_ctx)}u   /* KV cache positions (capped at the model's) */"),
        ("DTE_TEMPERATURE", _c_float(options.temperature)),
        ("DTE_TOP_K", str(options.top_k)),
        ("DTE_TOP_P", _c_float(options.top_p)),
        ("DTE_SEED", f"{options.seed}ULL"),
        ("DTE_THREADS", f"{threads}   /* 0: every worker */"),
        ("DTE_MODEL_SHA256", c_string(options.model_sha256 or "")),
        ("DTE_MODEL_NAME", c_string(options.model_name)),
        ("DTE_PERSONA_NAME", c_string(options.persona_name or "")),
        ("DTE_PERSONA_SHA256", c_string(persona)),
        ("DTE_PERSONA_SHA256_BYTES", "{" + ", ".join(f"0x{b:02x}" for b in bytes.fromhex(persona)) + "}"),
        ("DTE_IDENTITY_STRENGTH", _c_float(options.identity_strength)),
        *c_defines(options.chat),
        ("DTE_BOOT_CHAT", "1" if options.boot_chat else "0"),
        ("DTE_CHAT_PROMPT", c_string(options.prompt)),
        *((f"DTE_THERMAL_{key.upper()}", str(value)) for key, value in board.thermal.items()),
    ]
    defines += [(name, str(value)) for name, value in sorted(options.extra_defines.items())]
    lines = ["/* Generated by dte_build.toolchain for this build: do not edit. */", "#ifndef DTE_CONFIG_H",
             "#define DTE_CONFIG_H", ""]
    lines += [f"#define {name} {value}" for name, value in defines]
    lines += ["", "#endif /* DTE_CONFIG_H */", ""]
    return "\n".join(lines)


def _cflags_for(relative: str, board: Board) -> list[str]:
    march = BASELINE_MARCH if relative.startswith(BASELINE_DIRS) else board.march
    return ["-target", FIRMWARE_TARGET, *FIRMWARE_CFLAGS, f"-march={march}"]


def compute_build_id(board: Board, options: FirmwareOptions, toolchain: Toolchain) -> str:
    """16 hex digits: SHA-256 over every firmware/ and linker/ file, the board file, options and flags."""
    h = hashlib.sha256()
    for root in (FIRMWARE_DIR, LINKER_DIR):
        for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".c", ".h", ".toml", ".rsp")):
            h.update(str(path.relative_to(root.parent)).encode() + b"\0")
            h.update(hashlib.sha256(path.read_bytes()).digest())
    for path in sorted((Path(__file__).parent / "kernels").glob("*.py")):  # the SIMD kernel generator
        h.update(hashlib.sha256(path.read_bytes()).digest())
    h.update(board.source.read_bytes() if board.source else json.dumps(board.to_dict()).encode())
    h.update(json.dumps(asdict(options), sort_keys=True).encode())
    h.update(" ".join(FIRMWARE_CFLAGS + (board.march, toolchain.version)).encode())
    return h.hexdigest()[:16]


def _first_errors(stderr: str, limit: int = 3) -> str:
    errors = [line.strip() for line in stderr.splitlines() if "error" in line]
    if errors:
        return "; ".join(errors[:limit])
    lines = stderr.strip().splitlines()
    return lines[-1] if lines else "no output"


def _dependencies(depfile: Path) -> list[str]:
    """The files a clang -MD depfile lists after `target:` (line continuations and `\\ ` escapes undone)."""
    text = depfile.read_text().replace("\\\n", " ")
    body = text.split(":", 1)[1] if ":" in text else ""
    return [re.sub(r"\\(.)", r"\1", word) for word in re.findall(r"(?:\\.|\S)+", body)]


def _input_key(cmd: list[str], depfile: Path) -> str | None:
    """Hash of the command and every file the last compile read; None when unknown (compile again)."""
    if not depfile.is_file():
        return None
    h = hashlib.sha256("\0".join(cmd).encode())
    for name in _dependencies(depfile):
        try:
            h.update(name.encode() + b"\0" + Path(name).read_bytes())
        except OSError:
            return None
    return h.hexdigest()


def _compile_one(tc: Toolchain, relative: str, board: Board, build_dir: Path, kernels: bool = False) -> Path:
    """Compile one firmware file; skipped when the command and every file it read are unchanged."""
    obj = build_dir / "obj" / (relative.replace("/", "_").removesuffix(".c") + ".obj")
    depfile, stamp = obj.with_suffix(".d"), obj.with_suffix(".key")
    from .kernels import DISPATCH_DEFINE, DISPATCH_SOURCE  # llvmlite: imported only when firmware compiles

    defines = [DISPATCH_DEFINE] if kernels and relative == DISPATCH_SOURCE else []
    cmd = [tc.clang, *_cflags_for(relative, board), *defines, f"-I{FIRMWARE_DIR}", f"-I{build_dir}",
           "-c", str(FIRMWARE_DIR / relative), "-o", str(obj)]
    key = _input_key(cmd, depfile)
    if key is not None and obj.is_file() and stamp.is_file() and stamp.read_text() == key:
        return obj
    stamp.unlink(missing_ok=True)
    result = subprocess.run([*cmd, "-MD", "-MF", str(depfile)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise DteError(f"compile failed: firmware/{relative}: {_first_errors(result.stderr)}",
                       "fix the C error above (the build uses -Wall -Wextra -Werror)")
    key = _input_key(cmd, depfile)
    if key is not None:
        stamp.write_text(key)
    return obj


def _link(tc: Toolchain, objects: list[Path], out: Path) -> None:
    cmd = [tc.lld_link, f"@{LINK_RESPONSE_FILE}", f"/out:{out}", *map(str, objects)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode == 0:
        return
    undefined = sorted(set(re.findall(r"undefined symbol: (\S+)", result.stderr)))
    if undefined:
        raise DteError(f"link failed: undefined symbol(s) {', '.join(undefined)}",
                       "define them in a firmware source (no libc in firmware) or add the file to sources.toml")
    raise DteError(f"link failed: {_first_errors(result.stderr)}")


@dataclass(frozen=True)
class EfiCheck:
    machine: str
    subsystem: int
    relocations: int
    entry_rva: int
    image_base: int


def check_efi(path: Path) -> EfiCheck:
    """Parse `path` with lief: PE32+, x86-64, EFI application subsystem, base relocations, an entry point."""
    import lief

    pe = lief.PE.parse(str(path))
    if pe is None:
        raise DteError(f"{path} is not a PE file")
    problems = []
    if pe.header.machine != lief.PE.Header.MACHINE_TYPES.AMD64:
        problems.append(f"machine is {pe.header.machine}, not AMD64")
    if pe.optional_header.magic != lief.PE.PE_TYPE.PE32_PLUS:
        problems.append("not PE32+")
    subsystem = int(pe.optional_header.subsystem)
    if subsystem != PE_SUBSYSTEM_EFI_APPLICATION:
        problems.append(f"subsystem is {subsystem}, not {PE_SUBSYSTEM_EFI_APPLICATION} (EFI application)")
    relocations = sum(len(list(block.entries)) for block in pe.relocations) if pe.has_relocations else 0
    if relocations == 0:
        problems.append("no base relocations (the firmware loads it at any address)")
    if pe.optional_header.addressof_entrypoint == 0:
        problems.append("no entry point")
    if problems:
        raise DteError(f"{path.name} is not a valid EFI application: {'; '.join(problems)}")
    return EfiCheck("AMD64", subsystem, relocations, pe.optional_header.addressof_entrypoint,
                    pe.optional_header.imagebase)


def _kernel_object(board: Board, build_dir: Path) -> Path | None:
    """The board's llvmlite SIMD kernel object (dte_build.kernels), or None for a board without SIMD kernels."""
    from .kernels import board_isa, kernel_object  # llvmlite: imported only when firmware compiles

    try:
        board_isa(board)
    except DteError:
        return None
    return kernel_object(board, "coff", build_dir / "obj")


def build_firmware(board: Board, *, options: FirmwareOptions | None = None,
                   build_dir: Path | None = None, on_step: Callable[[str, int], None] | None = None) -> FirmwareBuild:
    """Compile and link BOOTX64.EFI for `board` into `build_dir` (default build/<board>/), check it, return it.

    `on_step(what, total)`: called as each step ends ("kernels", "compile engine/x.c", ..., "link"), with the
    number of steps in all, for a progress display."""
    start = time.monotonic()
    options = with_persona(board, options or FirmwareOptions())
    tc = find_toolchain()
    build_dir = Path(build_dir) if build_dir is not None else build_root() / board.name
    (build_dir / "obj").mkdir(parents=True, exist_ok=True)
    build_id = compute_build_id(board, options, tc)
    with build_lock(build_dir):
        return _build_locked(board, options, tc, build_dir, build_id, start, on_step or (lambda _what, _n: None))


@contextlib.contextmanager
def build_lock(build_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on `build_dir` (flock on `.lock`): another `dte build` for the same board waits
    instead of rewriting dte_config.h and the objects under this one's feet (issue 15 item 10)."""
    build_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(build_dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def unique_tmp(path: Path) -> Path:
    """A temporary name next to `path` that no other process picks (pid + random), for write-then-rename."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def _build_locked(board: Board, options: FirmwareOptions, tc: Toolchain, build_dir: Path, build_id: str,
                  start: float, on_step: Callable[[str, int], None]) -> FirmwareBuild:
    header = build_dir / "dte_config.h"
    text = config_header(board, options, build_id)
    if not header.is_file() or header.read_text() != text:
        header.write_text(text)
    efi = build_dir / "efi" / f"{build_id}.EFI"
    if efi.is_file():  # linked and checked before: the build id hashes every input (compute_build_id)
        return _finish(board, options, build_dir, build_id, efi, efi.read_bytes(), start)
    sources = read_source_list("common", "firmware")
    if not sources:
        raise DteError("firmware/sources.toml lists no firmware sources")
    steps = len(sources) + 2

    def compile_one(rel: str) -> Path:
        obj = _compile_one(tc, rel, board, build_dir, kernel_obj is not None)
        on_step(f"compile {rel}", steps)
        return obj

    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        kernel_obj = _kernel_object(board, build_dir)
        on_step("kernels", steps)
        objects = list(pool.map(compile_one, sources))
    if kernel_obj is not None:
        objects.append(kernel_obj)
    # Content-addressed output (the build id hashes every input): a concurrent build with other options links
    # its own file, so the image this build packs is always this build's firmware. BOOTX64.EFI: the latest.
    efi.parent.mkdir(exist_ok=True)
    tmp = unique_tmp(efi)
    try:
        _link(tc, objects, tmp)
        check_efi(tmp)
        on_step("link", steps)
        data = tmp.read_bytes()
        tmp.replace(efi)
    finally:
        tmp.unlink(missing_ok=True)
    return _finish(board, options, build_dir, build_id, efi, data, start)


def _finish(board: Board, options: FirmwareOptions, build_dir: Path, build_id: str, efi: Path, data: bytes,
            start: float) -> FirmwareBuild:
    """BOOTX64.EFI (the latest build) gets `data`; the build's result."""
    latest = build_dir / EFI_NAME
    if not latest.is_file() or latest.read_bytes() != data:
        tmp = unique_tmp(latest)
        tmp.write_bytes(data)
        tmp.replace(latest)
    return FirmwareBuild(efi, build_id, hashlib.sha256(data).hexdigest(), len(data), time.monotonic() - start,
                         board.name, build_dir, options.persona_sha256 or "", options.identity_strength, options.chat,
                         options.boot_chat)


def with_persona(board: Board, options: FirmwareOptions) -> FirmwareOptions:
    """`options` with the board's persona (name, SHA-256, system prompt) filled in when none was given."""
    if options.persona_sha256 is not None:
        return options
    from .persona import board_persona

    persona = board_persona(board)
    return replace(options, persona_name=persona.name, persona_sha256=persona.sha256, system_prompt=persona.system)


def compile_hosted_library(sources: Sequence[Path], out: Path, extra_flags: Sequence[str] = (), *,
                           include_dirs: Sequence[Path] = ()) -> Path:
    """Build a shared library for the host (Linux x86-64-v3) from C sources, for ctypes bindings and tests.

    Flags: -std=c11 -O2 -fPIC -shared -march=x86-64-v3 -Wall -Wextra -Werror -pthread, include dirs firmware/
    plus `include_dirs`, then `extra_flags` (e.g. ["-DDTE_HOSTED=1", "-lm"]). Written atomically to `out`;
    raises DteError with the first compiler errors on failure.
    """
    clang = find_clang()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = unique_tmp(out)
    cmd = [clang, *HOSTED_CFLAGS, f"-I{FIRMWARE_DIR}", *(f"-I{d}" for d in include_dirs),
           "-o", str(tmp), *map(str, sources), *extra_flags]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise DteError(f"hosted compile failed: {_first_errors(result.stderr)}", "fix the C error")
    tmp.replace(out)
    return out
