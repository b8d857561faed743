"""The hosted inference engine: builds firmware/engine + firmware/hosted into a shared library (cached under
build/host/ by a hash of the sources and flags) and binds its C API (firmware/hosted/dte_host.h) with ctypes."""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import toolchain
from .console import warn
from .errors import DteError
from .paths import FIRMWARE_DIR, build_root

ERRLEN = 512
DEFAULT_CTX_CAP = 4096
LINK_FLAGS = ["-lm", "-Wl,-z,defs"]
SANITIZE_FLAGS = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
                  "-fno-sanitize-recover=all", "-shared-libasan"]


def _digest(sources: Sequence[Path], flags: Sequence[str]) -> str:
    h = hashlib.sha256("\0".join(flags).encode())
    for path in list(sources) + sorted(FIRMWARE_DIR.glob("**/*.h")):
        h.update(str(path.relative_to(FIRMWARE_DIR)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def build_host_library(sanitize: bool = False, width: int | None = None) -> Path:
    """Build (or reuse) the hosted engine library from firmware/sources.toml [common] + [hosted], cached under
    build/host/ by a hash of sources, headers and flags. `sanitize` gives the ASan/UBSan variant (load it in a
    process started with LD_PRELOAD=asan_runtime()). `width`: the SIMD kernels' width (256 or 512; default
    kernel_width()), or 0 for none (the scalar reference dot products)."""
    sources = toolchain.hosted_sources()
    flags = (SANITIZE_FLAGS if sanitize else [] if width == 0 else _kernel_flags(width)) + LINK_FLAGS
    out = build_root() / "host" / f"libdte_host-{'asan-' if sanitize else ''}{_digest(sources, flags)}.so"
    if not out.exists():
        toolchain.compile_hosted_library(sources, out, flags)
    return out


KERNEL_WIDTH_ENV = "DTE_KERNEL_WIDTH"
"""Environment variable forcing the hosted kernels' vector width (256 or 512); default: the host's best."""


def kernel_width() -> int:
    """The SIMD kernel width the hosted library links: $DTE_KERNEL_WIDTH when set, else 512 on a host with
    AVX-512 VNNI (the epyc9654 kernels, vpdpbusd), else 256."""
    forced = os.environ.get(KERNEL_WIDTH_ENV, "").strip()
    if forced:
        if forced not in ("256", "512"):
            raise DteError(f"{KERNEL_WIDTH_ENV}={forced} is not a kernel width",
                           hint="set it to 256 or 512, or unset it")
        return int(forced)
    from .kernels import host_kernel_width

    return host_kernel_width() or 256


def _kernel_flags(width: int | None = None) -> list[str]:
    """Link the llvmlite SIMD kernels (`width` bits, default kernel_width(); this host's CPU) when they can be
    generated here; the engine falls back to the scalar reference dot products otherwise. The object's name (its
    ISA tag and IR hash) is among the flags, so the library cache is keyed on the width."""
    width = width or kernel_width()
    try:
        from .kernels import kernel_object

        obj = kernel_object(width, "elf", build_root() / "host" / "obj")
    except Exception as exc:  # a broken or missing generator must not stop the engine: scalar fallback
        warn(f"SIMD kernels unavailable for the hosted engine ({exc}); using the scalar reference")
        return []
    return ["-DDTE_HAVE_GENERATED_KERNELS=1", str(obj)]


def asan_runtime() -> Path:
    """The shared ASan runtime the sanitizer variant needs preloaded (from libclang-rt-19-dev)."""
    name = subprocess.run([toolchain.find_clang(), "-print-file-name=libclang_rt.asan-x86_64.so"],
                          capture_output=True, text=True, check=False).stdout.strip()
    path = Path(name)
    if not path.is_absolute() or not path.is_file():
        raise DteError("the clang ASan runtime is missing", hint="apt-get install libclang-rt-19-dev")
    return path


class _Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int32) for n in ("n_vocab", "n_embd", "n_layer", "n_head", "n_head_kv", "n_ff",
                                               "n_ctx_train", "n_ctx", "bos", "eos", "add_bos")]


class _Identity(ctypes.Structure):   # engine/identity.h dte_identity
    _fields_ = [("seed", ctypes.c_uint64), ("resonance", ctypes.c_float), ("weight", ctypes.c_float)]


TOKEN_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int32, ctypes.POINTER(ctypes.c_char),
                            ctypes.c_int32)

_lib_cache: dict[Path, ctypes.CDLL] = {}


_load_lock = threading.Lock()


def load_library(path: Path | None = None) -> ctypes.CDLL:
    """The hosted library, built when missing, loaded once per path. Serialized: `dte build` loads it from two
    threads at once (the model check and the weights pass's layout), and a first build writes the kernel object
    and the library."""
    with _load_lock:
        return _load_library(path)


def _load_library(path: Path | None) -> ctypes.CDLL:
    path = path or build_host_library()
    if path in _lib_cache:
        return _lib_cache[path]
    lib = ctypes.CDLL(str(path))
    c = ctypes
    i32p, f32p = c.POINTER(c.c_int32), c.POINTER(c.c_float)
    sigs: dict[str, tuple[object, list[object]]] = {
        "dte_host_load": (c.c_int, [c.c_char_p, c.c_int32, c.c_int32, c.c_int32, c.POINTER(c.c_void_p), c.c_char_p,
                                    c.c_size_t]),
        "dte_host_load_layout": (c.c_int, [c.c_char_p, c.c_int32, c.c_int32, c.c_int32, c.c_uint32,
                                           c.POINTER(c.c_void_p), c.c_char_p, c.c_size_t]),
        "dte_host_free": (None, [c.c_void_p]),
        "dte_host_get_info": (None, [c.c_void_p, c.POINTER(_Info)]),
        "dte_host_load_vocab": (c.c_int, [c.c_char_p, c.POINTER(c.c_void_p), c.c_char_p, c.c_size_t]),
        "dte_host_tokenize": (c.c_int64, [c.c_void_p, c.c_char_p, c.c_size_t, c.c_int32, c.c_int32, i32p,
                                          c.c_int64]),
        "dte_host_token_piece": (c.c_int32, [c.c_void_p, c.c_int32, c.c_int32, c.c_char_p, c.c_int32]),
        "dte_host_token_is_eog": (c.c_int32, [c.c_void_p, c.c_int32]),
        "dte_host_reset": (None, [c.c_void_p]),
        "dte_host_pos": (c.c_int32, [c.c_void_p]),
        "dte_host_eval": (c.c_int, [c.c_void_p, i32p, c.c_int64, f32p, c.c_char_p, c.c_size_t]),
        "dte_host_generate": (c.c_int, [c.c_void_p, i32p, c.c_int64, c.c_int32, c.c_float, c.c_int32, c.c_float,
                                        c.c_uint64, TOKEN_CB, c.c_void_p, i32p, i32p, c.POINTER(c.c_double),
                                        c.POINTER(c.c_double), c.c_char_p, c.c_size_t]),
        "dte_host_gguf_check": (c.c_int, [c.c_char_p, c.c_uint64, c.c_char_p, c.c_size_t]),
        "dte_host_model_check": (c.c_int, [c.c_char_p, c.c_uint64, c.c_char_p, c.c_size_t]),
        "dte_host_set_identity": (None, [c.c_void_p, c.c_char_p, c.c_float]),
        "dte_identity_init": (None, [c.POINTER(_Identity), c.c_char_p, c.c_float]),
        "dte_identity_apply": (None, [c.POINTER(_Identity), f32p, c.c_int64]),
    }
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    _lib_cache[path] = lib
    return lib


@dataclass
class Generation:
    prompt_ids: list[int]
    ids: list[int]
    text: str
    prompt_seconds: float
    gen_seconds: float

    @property
    def tok_per_s(self) -> float:
        return len(self.ids) / self.gen_seconds if self.gen_seconds > 0 else 0.0

    @property
    def prompt_tok_per_s(self) -> float:
        return len(self.prompt_ids) / self.prompt_seconds if self.prompt_seconds > 0 else 0.0


class Engine:
    """A loaded model in the hosted engine. Use as a context manager or call close()."""

    def __init__(self, model: str | Path, n_ctx: int = 0, threads: int | None = None, n_batch: int = 512,
                 library: Path | None = None, vocab_only: bool = False, weights_layout: int = 0) -> None:
        """`vocab_only`: load only the tokenizer (works on vocabulary GGUFs without tensors); tokenize, piece,
        detokenize and is_eog work, eval and generate do not. `weights_layout`: the layout of the file's matrices
        (dte_build.layout: GGUF, repacked in a private mapping at load, or ROWS4, already laid out)."""
        path = Path(model)
        if not path.is_file():
            raise DteError(f"model file not found: {path}", hint="pass --model PATH to a .gguf file")
        self._lib = load_library(library)
        threads = threads or min(os.cpu_count() or 1, 64)
        err = ctypes.create_string_buffer(ERRLEN)
        handle = ctypes.c_void_p()
        # n_ctx 0: the model's training context, capped (like llama.cpp's default) so a 128K-context model does
        # not allocate a many-GiB KV cache unasked.
        n_ctx = n_ctx if n_ctx > 0 else DEFAULT_CTX_CAP
        if vocab_only:
            rc = self._lib.dte_host_load_vocab(str(path).encode(), ctypes.byref(handle), err, ERRLEN)
        else:
            rc = self._lib.dte_host_load_layout(str(path).encode(), n_ctx, n_batch, threads, weights_layout,
                                                ctypes.byref(handle), err, ERRLEN)
        if rc != 0:
            raise DteError(f"cannot load {path.name}: {err.value.decode(errors='replace')}",
                           hint="use a llama-architecture GGUF (v2/v3)")
        self._h = handle
        info = _Info()
        self._lib.dte_host_get_info(self._h, ctypes.byref(info))
        self.info = {name: getattr(info, name) for name, _ in _Info._fields_}
        self.n_vocab = info.n_vocab
        self.n_ctx = info.n_ctx

    def close(self) -> None:
        if getattr(self, "_h", None):
            self._lib.dte_host_free(self._h)
            self._h = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def tokenize(self, text: str | bytes, add_bos: bool | None = None, special: bool = False) -> list[int]:
        """Token ids of `text`, as llama.cpp's llama_tokenize(text, add_special=add_bos, parse_special=special):
        add_bos adds BOS (and EOS) only where the model asks for them (tokenizer.ggml.add_bos_token; None: the
        same as True); `special` makes control tokens written in the text (`<|im_start|>`) single tokens."""
        raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        bos = 1 if add_bos is None else int(add_bos)
        cap = len(raw) + 8
        while True:
            buf = (ctypes.c_int32 * cap)()
            n = self._lib.dte_host_tokenize(self._h, raw, len(raw), bos, int(special), buf, cap)
            if n < 0:
                raise DteError("tokenizer ran out of memory", hint="use a shorter prompt")
            if n <= cap:
                return list(buf[:n])
            cap = n

    def piece(self, token: int, special: bool = False) -> bytes:
        """The bytes of one token (llama.cpp token_to_piece); `special`: control tokens as their text."""
        buf = ctypes.create_string_buffer(256)
        n = self._lib.dte_host_token_piece(self._h, token, int(special), buf, 256)
        if n > 256:
            buf = ctypes.create_string_buffer(n)
            n = self._lib.dte_host_token_piece(self._h, token, int(special), buf, n)
        return buf.raw[:n]

    def detokenize(self, ids: Sequence[int], special: bool = False) -> str:
        return b"".join(self.piece(i, special) for i in ids).decode("utf-8", errors="replace")

    def is_eog(self, token: int) -> bool:
        """Does generation stop at this token (EOS, EOT, <|im_end|>-style end-of-turn ids)?"""
        return bool(self._lib.dte_host_token_is_eog(self._h, token))

    def reset(self) -> None:
        self._lib.dte_host_reset(self._h)

    @property
    def pos(self) -> int:
        return int(self._lib.dte_host_pos(self._h))

    def eval(self, ids: Sequence[int]) -> list[float]:
        """Feed tokens at the next positions; returns the last token's logits."""
        arr = (ctypes.c_int32 * len(ids))(*ids)
        logits = (ctypes.c_float * self.n_vocab)()
        err = ctypes.create_string_buffer(ERRLEN)
        if self._lib.dte_host_eval(self._h, arr, len(ids), logits, err, ERRLEN) != 0:
            raise DteError(f"evaluation failed: {err.value.decode(errors='replace')}",
                           hint="keep the prompt within the context (--ctx)")
        return list(logits)

    def eval_numpy(self, ids: Sequence[int]):  # -> np.ndarray (numpy imported lazily)
        import numpy as np

        return np.array(self.eval(ids), dtype=np.float32)

    def set_identity(self, persona_sha256: bytes, strength: float) -> None:
        """Enable the sampler's identity stage (docs/identity.md) for later generate() calls; strength 0: off."""
        if len(persona_sha256) != 32:
            raise DteError("the persona hash must be 32 bytes (a SHA-256)")
        self._lib.dte_host_set_identity(self._h, persona_sha256, strength)

    def generate(self, prompt: str | Sequence[int], n_predict: int = 64, temp: float = 0.0, top_k: int = 40,
                 top_p: float = 0.95, seed: int = 0,
                 on_piece: Callable[[bytes], None] | None = None) -> Generation:
        prompt_ids = self.tokenize(prompt) if isinstance(prompt, str) else list(prompt)
        if not prompt_ids:
            raise DteError("the prompt is empty", hint="pass a non-empty --prompt")
        if len(prompt_ids) >= self.n_ctx:
            raise DteError(f"prompt is {len(prompt_ids)} tokens, the context holds {self.n_ctx}",
                           hint="shorten the prompt or raise --ctx")
        n_predict = max(0, min(n_predict, self.n_ctx - len(prompt_ids)))
        out = (ctypes.c_int32 * max(1, n_predict))()
        n_out = ctypes.c_int32()
        ps, gs = ctypes.c_double(), ctypes.c_double()
        err = ctypes.create_string_buffer(ERRLEN)

        def callback(_user: object, _id: int, piece: object, length: int) -> int:
            if on_piece is not None:
                on_piece(ctypes.string_at(piece, length))
            return 0

        cb = TOKEN_CB(callback)
        arr = (ctypes.c_int32 * len(prompt_ids))(*prompt_ids)
        rc = self._lib.dte_host_generate(self._h, arr, len(prompt_ids), n_predict, temp, top_k, top_p,
                                         seed & 0xFFFFFFFFFFFFFFFF, cb, None, out, ctypes.byref(n_out),
                                         ctypes.byref(ps), ctypes.byref(gs), err, ERRLEN)
        if rc != 0:
            raise DteError(f"generation failed: {err.value.decode(errors='replace')}", hint="check the model")
        ids = list(out[: n_out.value])
        return Generation(prompt_ids, ids, self.detokenize(ids), ps.value, gs.value)


def identity_apply(persona_sha256: bytes, strength: float, logits: Sequence[float],
                   library: Path | None = None) -> list[float]:
    """The C identity stage (engine/identity.c) applied to `logits` (float32): what the sampler sees."""
    if len(persona_sha256) != 32:
        raise DteError("the persona hash must be 32 bytes (a SHA-256)")
    lib = load_library(library)
    state = _Identity()
    lib.dte_identity_init(ctypes.byref(state), persona_sha256, strength)
    arr = (ctypes.c_float * len(logits))(*logits)
    lib.dte_identity_apply(ctypes.byref(state), arr, len(logits))
    return list(arr)


def gguf_check(data: bytes, model: bool = True, library: Path | None = None) -> tuple[int, str]:
    """Run the engine's parser (and model/tokenizer construction when `model`) over bytes in memory."""
    lib = load_library(library)
    err = ctypes.create_string_buffer(ERRLEN)
    fn = lib.dte_host_model_check if model else lib.dte_host_gguf_check
    rc = fn(data, len(data), err, ERRLEN)
    return int(rc), err.value.decode(errors="replace")

