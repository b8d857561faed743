"""Will the appliance run this GGUF? Asked of the engine itself, before anything is written.

`describe_model` maps the file (or the weights partition inside an image, at any offset) and hands it to the
hosted library's `dte_host_model_describe` (firmware/hosted/dte_host_model.c): the keys a user asks about
(architecture, tokenizer, pre-tokenizer, vocabulary, chat template) and the verdict of `dte_host_model_check`, the
same parse + model + tokenizer construction the firmware runs at boot. What the engine learns to run, `dte build`
accepts, with no second list here; what it refuses is refused at build time with the engine's own reason.
It costs milliseconds (no Python-side parse of the vocabulary).
"""

from __future__ import annotations

import ctypes
import mmap
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..board import Board
from ..console import warn
from ..errors import DteError

MIB = 1024 * 1024
N_TYPE_SLOTS = 32


class _Desc(ctypes.Structure):  # firmware/hosted/dte_host_model.h dte_host_model_desc
    _fields_ = [("version", ctypes.c_uint32), ("n_tensors", ctypes.c_uint64), ("n_kv", ctypes.c_uint64),
                ("n_vocab", ctypes.c_int64), ("n_layer", ctypes.c_int64), ("n_embd", ctypes.c_int64),
                ("n_ctx_train", ctypes.c_int64), ("type_counts", ctypes.c_uint64 * N_TYPE_SLOTS),
                ("has_chat_template", ctypes.c_int32), ("runs", ctypes.c_int32),
                ("architecture", ctypes.c_char * 64), ("tokenizer", ctypes.c_char * 32),
                ("pre_tokenizer", ctypes.c_char * 64), ("reason", ctypes.c_char * 256),
                ("chat_template_at", ctypes.c_uint64), ("chat_template_len", ctypes.c_uint64),
                ("bos_at", ctypes.c_uint64), ("bos_len", ctypes.c_uint64), ("eos_at", ctypes.c_uint64),
                ("eos_len", ctypes.c_uint64)]


@dataclass(frozen=True)
class ModelInfo:
    """What `dte inspect` shows of a model and `dte build` records; `runs`/`reason`: the engine's verdict."""

    name: str
    size: int
    version: int
    architecture: str
    tokenizer: str
    pre_tokenizer: str
    n_vocab: int | None
    chat_template: bool
    runs: bool
    reason: str
    tensor_count: int
    types: dict[str, int]
    n_layer: int | None = None
    n_embd: int | None = None
    context_length: int | None = None
    metadata_keys: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def verdict(self) -> str:
        """"yes" or "no (the engine's reason)"."""
        return "yes" if self.runs else f"no ({self.reason})"

    @property
    def chat(self) -> str:
        return "present" if self.chat_template else "none (plain completion)"


_bound: list[ctypes.CDLL] = []


def _library(path: Path | None = None) -> ctypes.CDLL:
    """The hosted library with the description functions bound (built once, cached under build/host/).
    `path`: use that build instead (the fuzz campaign binds the ASan/UBSan variant before the first call)."""
    if path is not None:
        _bound.clear()
    if not _bound:
        from ..engine import load_library

        lib = load_library(path)
        lib.dte_host_model_describe.restype = ctypes.c_int
        lib.dte_host_model_describe.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.POINTER(_Desc)]
        lib.dte_host_supported_types.restype = ctypes.c_int
        lib.dte_host_supported_types.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        lib.dte_host_supported_archs.restype = ctypes.c_int
        lib.dte_host_supported_archs.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        lib.dte_pre_names.restype = ctypes.c_char_p
        lib.dte_pre_names.argtypes = []
        lib.dte_type_name.restype = ctypes.c_char_p
        lib.dte_type_name.argtypes = [ctypes.c_uint32]
        _bound.append(lib)
    return _bound[0]


def supported_types() -> str:
    """The tensor types the engine takes as weights, as the engine lists them."""
    buf = ctypes.create_string_buffer(512)
    _library().dte_host_supported_types(buf, len(buf))
    return buf.value.decode()


def supported_architectures() -> str:
    """The general.architecture values the engine runs (its architecture table)."""
    buf = ctypes.create_string_buffer(512)
    _library().dte_host_supported_archs(buf, len(buf))
    return buf.value.decode()


def supported_pre_tokenizers() -> str:
    """The tokenizer.ggml.pre names the engine's tokenizer accepts, as it lists them."""
    return _text(_library().dte_pre_names() or b"")


def _supported_hint() -> str:
    return (f"dte runs what its engine accepts (docs/engine.md, 'What it runs': architectures "
            f"{supported_architectures()}; tensor types {supported_types()}; pre-tokenizers "
            f"{supported_pre_tokenizers()}); `dte inspect MODEL.gguf` says why a file does not run")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _opt(v: int) -> int | None:
    return None if v < 0 else int(v)


@dataclass(frozen=True)
class ChatStrings:
    """A model's `tokenizer.chat_template` and the texts of its BOS and EOS tokens (what a template names
    bos_token / eos_token)."""

    template: str
    bos: str
    eos: str


def _describe(path: str | os.PathLike[str], start: int, length: int | None,
              label: str) -> tuple[_Desc, bytes, int]:
    """Map bytes [start, start + length) of `path` (default: to the end) and describe them. Returns the
    description, the chat template + BOS + EOS texts concatenated (lengths in the description), and the length."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise DteError(f"cannot read model {path}: {exc.strerror}") from None
    try:
        total = os.lseek(fd, 0, os.SEEK_END)
        if length is None:
            length = max(0, total - start)
        if start < 0 or length < 0 or start + length > total:
            raise DteError(f"model {label}: bytes {start}..{start + length} lie outside the {total}-byte file")
        if length == 0:
            raise DteError(f"model {label} is empty (0 bytes)", "pass a GGUF file")
        head = os.pread(fd, 4, start)
        if head != b"GGUF":
            raise DteError(f"model {label} is not a GGUF file (starts with {head.hex(' ')}, expected 'GGUF')")
        base = start - start % mmap.ALLOCATIONGRANULARITY
        try:  # a private mapping: ctypes needs a writable buffer; nothing is written, so nothing is copied
            mapped = mmap.mmap(fd, length + start - base, offset=base, access=mmap.ACCESS_COPY)
        except (OSError, ValueError) as exc:
            raise DteError(f"cannot map model {label}: {exc}") from None
    finally:
        os.close(fd)
    try:
        window = (ctypes.c_char * len(mapped)).from_buffer(mapped)
        desc = _Desc()
        try:
            rc = _library().dte_host_model_describe(ctypes.addressof(window) + start - base, length,
                                                    ctypes.byref(desc))
        finally:
            del window
        skip = start - base
        blob = b"".join(mapped[skip + at:skip + at + n] for at, n in (
            (desc.chat_template_at, desc.chat_template_len), (desc.bos_at, desc.bos_len),
            (desc.eos_at, desc.eos_len)))
    finally:
        mapped.close()
    if rc != 0:
        raise DteError(f"model {label} would not run on dte: {_text(desc.reason) or f'code {rc}'}",
                       _supported_hint())
    return desc, blob, length


def context_bytes(path: str | os.PathLike[str], n_ctx: int, n_batch: int = 0) -> tuple[int, int]:
    """(bytes, positions): the memory the engine allocates at open for the KV cache, scratch and logits of the model
    at `path` with an n_ctx-position context (0: the model's training context; a larger request is capped to it),
    as the firmware does (engine/engine.h dte_engine_context_bytes). (0, 0) when the model does not load."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.lseek(fd, 0, os.SEEK_END)
        mapped = mmap.mmap(fd, size, access=mmap.ACCESS_COPY)
    finally:
        os.close(fd)
    try:
        window = (ctypes.c_char * len(mapped)).from_buffer(mapped)
        used = ctypes.c_int32(0)
        lib = _library()
        lib.dte_host_context_bytes.restype = ctypes.c_uint64
        lib.dte_host_context_bytes.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int32, ctypes.c_int32,
                                               ctypes.POINTER(ctypes.c_int32)]
        try:
            need = int(lib.dte_host_context_bytes(ctypes.addressof(window), size, n_ctx, n_batch, ctypes.byref(used)))
        finally:
            del window
    finally:
        mapped.close()
    return need, int(used.value)


def chat_strings(path: str | os.PathLike[str]) -> ChatStrings | None:
    """The model's chat template with its BOS/EOS token texts (None without a template), read by the engine's
    parser in milliseconds."""
    desc, blob, _ = _describe(path, 0, None, Path(path).name)
    if not desc.has_chat_template:
        return None
    a, b = desc.chat_template_len, desc.chat_template_len + desc.bos_len
    return ChatStrings(_text(blob[:a]), _text(blob[a:b]), _text(blob[b:b + desc.eos_len]))


def describe_model(path: str | os.PathLike[str], *, start: int = 0, length: int | None = None,
                   name: str | None = None, what: str | None = None) -> ModelInfo:
    """Describe the GGUF in bytes [start, start + length) of `path` (default: the whole file) with the engine.

    Raises a one-line DteError naming `what` (default: the file name) when the bytes are not a GGUF the engine's
    parser accepts at all (missing, empty, not GGUF, truncated header); otherwise returns the description, with
    `runs` False and the engine's reason when the firmware would refuse it.
    """
    desc, _, length = _describe(path, start, length, what or Path(path).name)
    lib = _library()
    types = {_text(lib.dte_type_name(t)).upper(): int(n) for t, n in enumerate(desc.type_counts) if n}
    return ModelInfo(
        name=name if name is not None else Path(path).name, size=length, version=int(desc.version),
        architecture=_text(desc.architecture), tokenizer=_text(desc.tokenizer),
        pre_tokenizer=_text(desc.pre_tokenizer), n_vocab=_opt(desc.n_vocab),
        chat_template=bool(desc.has_chat_template), runs=bool(desc.runs), reason=_text(desc.reason),
        tensor_count=int(desc.n_tensors), types=dict(sorted(types.items())), n_layer=_opt(desc.n_layer),
        n_embd=_opt(desc.n_embd), context_length=_opt(desc.n_ctx_train), metadata_keys=int(desc.n_kv))


def check_model(path: str | os.PathLike[str], board: Board | None = None, *, stream_weights: bool = False,
                n_ctx: int | None = None) -> ModelInfo:
    """Refuse, with the engine's reason, a GGUF the firmware would refuse (and one too big for `board`'s weights
    region). `stream_weights`: a model larger than the weights region is accepted (with a warning): the firmware
    keeps what fits resident and streams the other layers from NVMe (firmware/boot/weights_stream.h).
    `n_ctx` (with `board`): the context the firmware will allocate (DTE_N_CTX); refused when its KV cache and
    scratch do not fit the board's memory left beside the weights."""
    p = Path(path)
    if not p.is_file():
        raise DteError(f"model {p} does not exist or is not a file")
    info = describe_model(p)
    if not info.runs:
        what = ", ".join(x for x in (f"architecture '{info.architecture or 'none'}'",
                                     f"tokenizer '{info.tokenizer or 'none'}'",
                                     f"pre-tokenizer '{info.pre_tokenizer}'" if info.pre_tokenizer else "") if x)
        raise DteError(f"model {p.name} ({what}) would not run on dte: {info.reason}", _supported_hint())
    size = info.size
    if board is not None:
        region = board.region("weights")
        if size > region.size_mib * MIB and stream_weights:
            warn(f"model {p.name} is {size / MIB:.1f} MiB, board {board.name}'s weights region holds "
                 f"{region.size_mib} MiB: the firmware will stream the layers that do not fit from NVMe")
        elif size > region.size_mib * MIB:
            raise DteError(f"model {p.name} is {size / MIB:.1f} MiB but board {board.name}'s weights region holds "
                           f"{region.size_mib} MiB", "pick a smaller quantization or a bigger board, or build with "
                           "--stream-weights")
        if n_ctx is not None:
            _check_context(p, info, board, n_ctx)
    return info


def _check_context(p: Path, info: ModelInfo, board: Board, n_ctx: int) -> None:
    """The engine allocates its KV cache and scratch from every region the weights leave (boot/alloc.c order:
    runtime, scratch, kv_cache, then the weights region's rest)."""
    need, used = context_bytes(p, n_ctx)
    weights = board.region("weights").size_mib * MIB
    have = sum(r.size_mib * MIB for r in board.regions if r.name != "weights") + max(0, weights - info.size)
    if need > have:
        raise DteError(f"model {p.name} with a {used}-position context needs {need / MIB:.1f} MiB for its KV cache "
                       f"and scratch, but board {board.name} has {have / MIB:.1f} MiB beside the weights",
                       "build with a smaller -c/--ctx-size")
