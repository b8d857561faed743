"""The dte token protocol, version 2 (docs/protocol.md): frame encode/decode, HMAC-SHA256, payloads, keys.

An implementation independent of firmware/net/proto.c: the client uses it, and tests check each against the other.
Every decoder raises ProtocolError (a DteError) on any payload it cannot read, never another exception.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import ipaddress
import math
import os
import secrets
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DteError

MAGIC = b"DTE1"
VERSION = 2
HEADER = struct.Struct(">4sBBHQQI")   # magic, version, type, flags, session, sequence, payload length
HEADER_SIZE = HEADER.size              # 28
TAG_SIZE = 32
MIN_FRAME = HEADER_SIZE + TAG_SIZE     # 60
MAX_FRAME = 1472                       # one Ethernet MTU: 1500 - IPv4 20 - UDP 8
MAX_PAYLOAD = MAX_FRAME - HEADER_SIZE - TAG_SIZE   # 1412
KEY_SIZE = 32
REPLAY_WINDOW = 64

FLAG_PROMPT_TOKENS = 0x0001   # TOKENS: the prompt's tokens
FLAG_APPEND = 0x0002          # PROMPT: continue the session's transcript
FLAG_CHAT = 0x0004            # PROMPT: the text is a user turn for the model's chat template
FLAG_RESPONSE = 0x8000

PROMPT_FIXED = struct.Struct(">IfIfQ")   # n_predict, temperature, top_k, top_p, seed
MAX_PROMPT_TEXT = MAX_PAYLOAD - PROMPT_FIXED.size   # 1388
MAX_N_PREDICT = 4096
DONE_FMT = struct.Struct(">B3xIIQQII")
MAX_NONCE = 64
MAX_PING = 64
CLIENT_NONCE = 16
COOKIE = 16
COOKIE_FMT = struct.Struct(f">Q{CLIENT_NONCE}s{COOKIE}s")   # offered session id, client nonce, cookie
HELLO_PAYLOAD = COOKIE_FMT.size                              # 40: a HELLO is never smaller than its COOKIE
OPENED_FMT = struct.Struct(">III")                           # context size, idle timeout s, sessions


class FrameType(enum.IntEnum):
    PROMPT = 1
    TOKENS = 2
    DONE = 3
    CANCEL = 4
    ERROR = 5
    STATS_REQUEST = 6
    STATS = 7
    ATTEST_REQUEST = 8
    ATTEST = 9
    PING = 10
    PONG = 11
    QUEUED = 12
    HELLO = 13
    COOKIE = 14
    OPEN = 15
    OPENED = 16
    GONE = 17
    CLOSE = 18
    INFO_REQUEST = 19
    INFO = 20


class ErrorCode(enum.IntEnum):
    BUSY = 1
    BAD_REQUEST = 2
    WRONG_STATE = 3
    ENGINE = 4
    UNSUPPORTED = 5
    NOT_RUNNING = 6
    CONTEXT_FULL = 7


class DoneReason(enum.IntEnum):
    LENGTH = 0
    END_OF_SEQUENCE = 1
    CANCELLED = 2
    ENGINE_ERROR = 3
    CONTEXT_FULL = 4


# The appliance's thermal governor (docs/thermal.md) appends these; a hosted server stops before them.
THERMAL_STATS_NAMES = [
    "thermal_state", "thermal_tctl_mc", "thermal_pkg_mw", "thermal_workers", "thermal_samples",
    "thermal_paced_samples", "thermal_critical_trips",
]
STATS_NAMES = [
    "rx_frames", "malformed", "too_large", "bad_tag", "replay", "unknown_type", "served", "busy", "cancelled",
    "generations", "tokens_generated", "cookies", "bad_cookie", "opened", "gone", "wrong_peer", "evicted",
    "expired",
    "net_rx_frames", "net_tx_frames", "net_dropped", "net_bad_checksum", "net_fragments", "net_arp_replies",
    "net_icmp_replies", "net_tx_errors",
    *THERMAL_STATS_NAMES,
]


class ProtocolError(DteError):
    """A frame or payload that cannot be accepted; `kind` is the STATS counter it falls under."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"protocol error ({kind}): {message}",
                         "the appliance sent something this client cannot read; check both run the same protocol "
                         "version")
        self.kind = kind


def _unpack(fmt: struct.Struct | str, payload: bytes, what: str, offset: int = 0) -> tuple:
    try:
        return struct.unpack_from(fmt, payload, offset) if isinstance(fmt, str) else fmt.unpack_from(payload, offset)
    except struct.error:
        raise ProtocolError("malformed", f"{what} payload of {len(payload)} bytes is truncated") from None


def _utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("malformed", f"{what} is not UTF-8") from None


@dataclass(frozen=True)
class Frame:
    type: int
    session: int
    sequence: int
    payload: bytes = b""
    flags: int = 0


def encode_frame(key: bytes, frame: Frame) -> bytes:
    """The wire bytes of `frame`, tag included."""
    if len(frame.payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(frame.payload)} bytes exceeds {MAX_PAYLOAD}")
    head = HEADER.pack(MAGIC, VERSION, frame.type, frame.flags, frame.session, frame.sequence, len(frame.payload))
    body = head + frame.payload
    return body + hmac.new(key, body, hashlib.sha256).digest()


def allowed_flags(ftype: int) -> int:
    """The flags a frame of this type may carry besides RESPONSE."""
    if ftype == FrameType.TOKENS:
        return FLAG_PROMPT_TOKENS
    if ftype == FrameType.PROMPT:
        return FLAG_APPEND | FLAG_CHAT
    return 0


def decode_frame(key: bytes, data: bytes, *, expect_response: bool | None = None) -> Frame:
    """Parse and authenticate one datagram, applying the checks of docs/protocol.md in order (1-4).

    `expect_response`: True for a client reading the appliance's frames (RESPONSE flag required), False for a
    server reading requests (flag forbidden), None to accept either. Raises ProtocolError.
    """
    if len(data) > MAX_FRAME:
        raise ProtocolError("too_large", f"{len(data)} bytes > {MAX_FRAME}")
    if len(data) < MIN_FRAME:
        raise ProtocolError("malformed", f"{len(data)} bytes is shorter than a frame")
    magic, version, ftype, flags, session, sequence, plen = HEADER.unpack_from(data)
    if magic != MAGIC or version != VERSION:
        raise ProtocolError("malformed", f"bad magic/version {magic!r}/{version}")
    if HEADER_SIZE + plen + TAG_SIZE != len(data):
        raise ProtocolError("malformed", f"payload length {plen} does not match datagram of {len(data)}")
    body, tag = data[:-TAG_SIZE], data[-TAG_SIZE:]
    if not hmac.compare_digest(hmac.new(key, body, hashlib.sha256).digest(), tag):
        raise ProtocolError("bad_tag", "HMAC tag does not verify")
    if flags & ~(FLAG_RESPONSE | allowed_flags(ftype)) or sequence == 0:
        raise ProtocolError("malformed", f"flags {flags:#06x}, sequence {sequence}")
    if expect_response is not None and bool(flags & FLAG_RESPONSE) != expect_response:
        raise ProtocolError("malformed", "RESPONSE flag in the wrong direction")
    return Frame(ftype, session, sequence, bytes(body[HEADER_SIZE:]), flags)


@dataclass
class ReplayWindow:
    """Anti-replay window of RFC 4303 §3.4.3: the highest sequence seen and a 64-bit bitmap below it."""

    size: int = REPLAY_WINDOW
    highest: int = 0
    bitmap: int = 0

    def fresh(self, sequence: int) -> bool:
        if sequence == 0:
            return False
        if sequence > self.highest:
            return True
        offset = self.highest - sequence
        return offset < self.size and not (self.bitmap >> offset) & 1

    def mark(self, sequence: int) -> None:
        if sequence > self.highest:
            shift = sequence - self.highest
            self.bitmap = ((self.bitmap << shift) | 1) & ((1 << self.size) - 1) if shift < self.size else 1
            self.highest = sequence
        else:
            self.bitmap |= 1 << (self.highest - sequence)

    def accept(self, sequence: int) -> bool:
        """Mark and return True when fresh; False for a replay or a sequence older than the window."""
        if not self.fresh(sequence):
            return False
        self.mark(sequence)
        return True


# ---- payloads ---------------------------------------------------------------------------------------------

def check_prompt_text(raw: bytes) -> None:
    """The prompt text rule (docs/protocol.md "Prompt text"): 1..1388 bytes of UTF-8 without NUL, else DteError."""
    if not raw or len(raw) > MAX_PROMPT_TEXT:
        raise DteError(f"prompt is {len(raw)} bytes; a frame carries 1..{MAX_PROMPT_TEXT}", "shorten the prompt")
    if b"\x00" in raw:
        raise DteError("prompt holds a NUL character", "remove it: the appliance refuses NUL in prompts")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DteError(f"prompt is not valid UTF-8 (byte {exc.start})", "send UTF-8 text") from None


@dataclass(frozen=True)
class Prompt:
    """A PROMPT: the text and sampling settings. `append` continues the session's transcript (else the
    transcript starts over with this text); `chat` asks the appliance to format the text as a user turn with
    the model's chat template. Both travel as header flags (`flags`)."""

    text: str
    n_predict: int = 32
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0
    append: bool = False
    chat: bool = False

    @property
    def flags(self) -> int:
        return (FLAG_APPEND if self.append else 0) | (FLAG_CHAT if self.chat else 0)

    def encode(self) -> bytes:
        try:
            raw = self.text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise DteError(f"prompt is not valid Unicode text (character {exc.start})", "send UTF-8 text") from None
        check_prompt_text(raw)
        if not 1 <= self.n_predict <= MAX_N_PREDICT:
            raise DteError(f"n_predict {self.n_predict} out of range", f"use 1..{MAX_N_PREDICT}")
        if not (0.0 <= self.temperature <= 100.0) or not (0.0 <= self.top_p <= 1.0):
            raise DteError(f"temperature {self.temperature} / top_p {self.top_p} out of range",
                           "use temperature 0..100 and top_p 0..1")
        return PROMPT_FIXED.pack(self.n_predict, self.temperature, self.top_k & 0xFFFFFFFF, self.top_p,
                                 self.seed & 0xFFFFFFFFFFFFFFFF) + raw

    @classmethod
    def decode(cls, payload: bytes, flags: int = 0) -> Prompt:
        n, temp, top_k, top_p, seed = _unpack(PROMPT_FIXED, payload, "PROMPT")
        raw = payload[PROMPT_FIXED.size:]
        try:
            check_prompt_text(raw)
        except DteError as exc:
            raise ProtocolError("malformed", f"PROMPT text: {exc.message}") from None
        if not 1 <= n <= MAX_N_PREDICT or math.isnan(temp) or not 0 <= temp <= 100 or not 0 <= top_p <= 1:
            raise ProtocolError("malformed", "PROMPT values out of range")
        return cls(raw.decode("utf-8"), n, temp, top_k, top_p, seed, bool(flags & FLAG_APPEND),
                   bool(flags & FLAG_CHAT))


@dataclass(frozen=True)
class Token:
    id: int
    piece: bytes


def encode_tokens(first_index: int, tokens: list[Token]) -> bytes:
    out = bytearray(struct.pack(">IH", first_index, len(tokens)))
    for t in tokens:
        out += struct.pack(">IH", t.id, len(t.piece)) + t.piece
    return bytes(out)


def decode_tokens(payload: bytes) -> tuple[int, list[Token]]:
    first, count = _unpack(">IH", payload, "TOKENS")
    pos, tokens = 6, []
    for _ in range(count):
        tid, plen = _unpack(">IH", payload, "TOKENS", pos)
        pos += 6
        if pos + plen > len(payload):
            raise ProtocolError("malformed", "TOKENS piece runs past the payload")
        tokens.append(Token(tid, payload[pos:pos + plen]))
        pos += plen
    if pos != len(payload):
        raise ProtocolError("malformed", "TOKENS payload has trailing bytes")
    return first, tokens


@dataclass(frozen=True)
class Done:
    reason: int
    prompt_tokens: int           # evaluated this turn (the reused ones not counted)
    generated_tokens: int
    prompt_ns: int
    generate_ns: int
    reused_tokens: int = 0       # transcript tokens whose KV entries were kept
    context_used: int = 0        # the session's transcript length after the turn

    def encode(self) -> bytes:
        return DONE_FMT.pack(self.reason, self.prompt_tokens, self.generated_tokens, self.prompt_ns,
                             self.generate_ns, self.reused_tokens, self.context_used)

    @classmethod
    def decode(cls, payload: bytes) -> Done:
        if len(payload) != DONE_FMT.size:
            raise ProtocolError("malformed", f"DONE payload of {len(payload)} bytes")
        return cls(*DONE_FMT.unpack(payload))


def encode_error(code: int, message: str) -> bytes:
    return struct.pack(">H", code) + message.encode("utf-8")[:200]


def decode_error(payload: bytes) -> tuple[int, str]:
    (code,) = _unpack(">H", payload, "ERROR")
    if len(payload) > 2 + 200:
        raise ProtocolError("malformed", f"ERROR message of {len(payload) - 2} bytes (at most 200)")
    return code, payload[2:].decode("utf-8", "replace")


def decode_stats(payload: bytes) -> dict[str, int]:
    (count,) = _unpack(">H", payload, "STATS")
    if len(payload) != 2 + 8 * count:
        raise ProtocolError("malformed", f"STATS with {count} counters in {len(payload)} bytes")
    values = struct.unpack_from(f">{count}Q", payload, 2)
    return {(STATS_NAMES[i] if i < len(STATS_NAMES) else f"counter_{i}"): v for i, v in enumerate(values)}


def encode_stats(values: list[int]) -> bytes:
    return struct.pack(f">H{len(values)}Q", len(values), *values)


def decode_attest(payload: bytes) -> tuple[bytes, bytes]:
    """(nonce echoed, blob)."""
    (nlen,) = _unpack(">H", payload, "ATTEST")
    if nlen > MAX_NONCE or 2 + nlen > len(payload):
        raise ProtocolError("malformed", f"ATTEST nonce length {nlen} in {len(payload)} bytes")
    return payload[2:2 + nlen], payload[2 + nlen:]


def decode_queued(payload: bytes) -> int:
    if len(payload) != 4:
        raise ProtocolError("malformed", f"QUEUED payload of {len(payload)} bytes")
    return int.from_bytes(payload, "big")


def encode_hello(nonce: bytes) -> bytes:
    """A HELLO payload: the client nonce, zero-padded so the HELLO is as large as the COOKIE it asks for."""
    return nonce + bytes(HELLO_PAYLOAD - len(nonce))


def decode_cookie(payload: bytes) -> tuple[int, bytes, bytes]:
    """(offered session id, client nonce echoed, cookie)."""
    if len(payload) != COOKIE_FMT.size:
        raise ProtocolError("malformed", f"COOKIE payload of {len(payload)} bytes")
    return COOKIE_FMT.unpack(payload)


@dataclass(frozen=True)
class Opened:
    context_size: int
    idle_timeout_s: int
    sessions: int

    @classmethod
    def decode(cls, payload: bytes) -> Opened:
        if len(payload) != OPENED_FMT.size:
            raise ProtocolError("malformed", f"OPENED payload of {len(payload)} bytes")
        return cls(*OPENED_FMT.unpack(payload))


@dataclass(frozen=True)
class ModelInfo:
    """INFO: the model the appliance runs. `sha256`: the weights' (lowercase hex; 64 zeros: unknown); `name`: the
    build's name for it (the GGUF file's stem; "" unknown)."""

    sha256: str
    name: str

    @property
    def known_sha256(self) -> str | None:
        return None if self.sha256 == "0" * 64 else self.sha256

    def encode(self) -> bytes:
        name = self.name.encode()
        return bytes.fromhex(self.sha256) + bytes([len(name)]) + name

    @classmethod
    def decode(cls, payload: bytes) -> ModelInfo:
        if len(payload) < 33 or len(payload) != 33 + payload[32]:
            raise ProtocolError("malformed", f"INFO payload of {len(payload)} bytes")
        return cls(payload[:32].hex(), payload[33:].decode("utf-8", "replace"))


# ---- keys -------------------------------------------------------------------------------------------------

def generate_key() -> bytes:
    return secrets.token_bytes(KEY_SIZE)


def write_key(path: str | Path, key: bytes, *, raw: bool = False, overwrite: bool = False) -> Path:
    """Write `key` as 64 hex digits + newline (or raw 32 bytes), created with mode 0600."""
    target = Path(path)
    if target.exists() and not overwrite:
        raise DteError(f"{target} already exists", "choose another path or pass --force")
    data = key if raw else (key.hex() + "\n").encode()
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    try:
        fd = os.open(target, flags, 0o600)
    except OSError as exc:
        raise DteError(f"cannot create key file {target}: {exc.strerror}", "check the directory exists") from exc
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(data)
    return target


def load_key(path: str | Path) -> bytes:
    """Read a key file written by `dte keygen`: 64 hex digits (whitespace ignored) or exactly 32 raw bytes."""
    source = Path(path)
    try:
        data = source.read_bytes()
        mode = source.stat().st_mode
    except FileNotFoundError:
        raise DteError(f"key file {source} not found", "make one with `dte keygen -o KEYFILE`") from None
    except OSError as exc:
        raise DteError(f"cannot read key file {source}: {exc.strerror}", "check its permissions") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        from .console import warn
        warn(f"key file {source} is readable by others (mode {stat.S_IMODE(mode):o}); chmod 600 it")
    text = data.strip()
    if len(text) == 2 * KEY_SIZE:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    if len(data) == KEY_SIZE:
        return data
    raise DteError(f"key file {source} holds {len(data)} bytes, not a key",
                   f"expected {2 * KEY_SIZE} hex digits or {KEY_SIZE} raw bytes; make one with `dte keygen`")


def c_network_defines(network: dict, key: bytes | None) -> list[tuple[str, str]]:
    """dte_config.h defines for firmware/net from a board's [network] table and the appliance key
    (docs/protocol.md "Firmware configuration"). Values are C expressions."""

    def u32(name: str) -> str:
        return f"0x{int(ipaddress.IPv4Address(network[name])):08X}u"

    mac = str(network.get("mac", "nic"))
    mac_bytes = bytes(6) if mac == "nic" else bytes(int(part, 16) for part in mac.split(":"))
    defines = [("DTE_NET_IPV4", u32("ipv4")), ("DTE_NET_NETMASK", u32("netmask")),
               ("DTE_NET_GATEWAY", u32("gateway")), ("DTE_NET_PORT", f"{int(network['port'])}u"),
               ("DTE_NET_MAC", "{" + ", ".join(f"0x{b:02x}" for b in mac_bytes) + "}"),
               ("DTE_NET_IDLE_TIMEOUT_S", f"{int(network.get('session_idle_s', 600))}u")]
    if key is not None:
        if len(key) != KEY_SIZE:
            raise DteError(f"appliance key is {len(key)} bytes, not {KEY_SIZE}", "make one with `dte keygen`")
        defines += [("DTE_PROTO_KEY", "{" + ", ".join(f"0x{b:02x}" for b in key) + "}"), ("DTE_PROTO_HAS_KEY", "1")]
    else:
        defines.append(("DTE_PROTO_HAS_KEY", "0"))
    return defines


@dataclass
class SessionCounter:
    """Outgoing sequence numbers of one session."""

    session: int = field(default_factory=lambda: secrets.randbits(64) or 1)
    next_sequence: int = 1

    def take(self) -> int:
        seq = self.next_sequence
        self.next_sequence += 1
        return seq
