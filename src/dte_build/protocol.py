"""The dte token protocol, version 1 (docs/protocol.md): frame encode/decode, HMAC-SHA256, payloads, keys.

An implementation independent of firmware/net/proto.c: the client uses it, and tests check each against the other.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import ipaddress
import os
import secrets
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DteError

MAGIC = b"DTE1"
VERSION = 1
HEADER = struct.Struct(">4sBBHQQI")   # magic, version, type, flags, session, sequence, payload length
HEADER_SIZE = HEADER.size              # 28
TAG_SIZE = 32
MAX_FRAME = 1472                       # one Ethernet MTU: 1500 - IPv4 20 - UDP 8
MAX_PAYLOAD = MAX_FRAME - HEADER_SIZE - TAG_SIZE   # 1412
KEY_SIZE = 32
REPLAY_WINDOW = 64

FLAG_PROMPT_TOKENS = 0x0001
FLAG_RESPONSE = 0x8000

PROMPT_FIXED = struct.Struct(">IfIfQ")   # n_predict, temperature, top_k, top_p, seed
MAX_PROMPT_TEXT = MAX_PAYLOAD - PROMPT_FIXED.size   # 1388
MAX_N_PREDICT = 4096
DONE_FMT = struct.Struct(">B3xIIQQ")
MAX_NONCE = 64


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


class ErrorCode(enum.IntEnum):
    BUSY = 1
    BAD_REQUEST = 2
    WRONG_STATE = 3
    ENGINE = 4
    UNSUPPORTED = 5
    NOT_RUNNING = 6


class DoneReason(enum.IntEnum):
    LENGTH = 0
    END_OF_SEQUENCE = 1
    CANCELLED = 2
    ENGINE_ERROR = 3


STATS_NAMES = [
    "rx_frames", "malformed", "too_large", "bad_tag", "replay", "unknown_type", "served", "busy", "cancelled",
    "generations", "tokens_generated",
    "net_rx_frames", "net_tx_frames", "net_dropped", "net_bad_checksum", "net_fragments", "net_arp_replies",
    "net_icmp_replies", "net_tx_errors",
]


class ProtocolError(Exception):
    """A frame that must be dropped; `kind` is the STATS counter it falls under."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


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


def decode_frame(key: bytes, data: bytes, *, expect_response: bool | None = None) -> Frame:
    """Parse and authenticate one datagram, applying the checks of docs/protocol.md in order (1-4).

    `expect_response`: True for a client reading the appliance's frames (RESPONSE flag required), False for a
    server reading requests (flag forbidden), None to accept either. Raises ProtocolError.
    """
    if len(data) > MAX_FRAME:
        raise ProtocolError("too_large", f"{len(data)} bytes > {MAX_FRAME}")
    if len(data) < HEADER_SIZE + TAG_SIZE:
        raise ProtocolError("malformed", f"{len(data)} bytes is shorter than a frame")
    magic, version, ftype, flags, session, sequence, plen = HEADER.unpack_from(data)
    if magic != MAGIC or version != VERSION:
        raise ProtocolError("malformed", f"bad magic/version {magic!r}/{version}")
    if HEADER_SIZE + plen + TAG_SIZE != len(data):
        raise ProtocolError("malformed", f"payload length {plen} does not match datagram of {len(data)}")
    body, tag = data[:-TAG_SIZE], data[-TAG_SIZE:]
    if not hmac.compare_digest(hmac.new(key, body, hashlib.sha256).digest(), tag):
        raise ProtocolError("bad_tag", "HMAC tag does not verify")
    allowed = FLAG_RESPONSE | (FLAG_PROMPT_TOKENS if ftype == FrameType.TOKENS else 0)
    if flags & ~allowed or session == 0 or sequence == 0:
        raise ProtocolError("malformed", f"flags {flags:#06x}, session {session}, sequence {sequence}")
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

@dataclass(frozen=True)
class Prompt:
    text: str
    n_predict: int = 32
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0

    def encode(self) -> bytes:
        raw = self.text.encode("utf-8")
        if not raw or len(raw) > MAX_PROMPT_TEXT:
            raise DteError(f"prompt is {len(raw)} bytes; a frame carries 1..{MAX_PROMPT_TEXT}",
                           "shorten the prompt")
        if not 1 <= self.n_predict <= MAX_N_PREDICT:
            raise DteError(f"n_predict {self.n_predict} out of range", f"use 1..{MAX_N_PREDICT}")
        return PROMPT_FIXED.pack(self.n_predict, self.temperature, self.top_k, self.top_p,
                                 self.seed & 0xFFFFFFFFFFFFFFFF) + raw

    @classmethod
    def decode(cls, payload: bytes) -> Prompt:
        n, temp, top_k, top_p, seed = PROMPT_FIXED.unpack_from(payload)
        return cls(payload[PROMPT_FIXED.size:].decode("utf-8"), n, temp, top_k, top_p, seed)


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
    first, count = struct.unpack_from(">IH", payload)
    pos, tokens = 6, []
    for _ in range(count):
        tid, plen = struct.unpack_from(">IH", payload, pos)
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
    prompt_tokens: int
    generated_tokens: int
    prompt_ns: int
    generate_ns: int

    def encode(self) -> bytes:
        return DONE_FMT.pack(self.reason, self.prompt_tokens, self.generated_tokens, self.prompt_ns, self.generate_ns)

    @classmethod
    def decode(cls, payload: bytes) -> Done:
        if len(payload) != DONE_FMT.size:
            raise ProtocolError("malformed", f"DONE payload of {len(payload)} bytes")
        return cls(*DONE_FMT.unpack(payload))


def encode_error(code: int, message: str) -> bytes:
    return struct.pack(">H", code) + message.encode("utf-8")[:200]


def decode_error(payload: bytes) -> tuple[int, str]:
    (code,) = struct.unpack_from(">H", payload)
    return code, payload[2:].decode("utf-8", "replace")


def decode_stats(payload: bytes) -> dict[str, int]:
    (count,) = struct.unpack_from(">H", payload)
    if len(payload) != 2 + 8 * count:
        raise ProtocolError("malformed", f"STATS with {count} counters in {len(payload)} bytes")
    values = struct.unpack_from(f">{count}Q", payload, 2)
    return {(STATS_NAMES[i] if i < len(STATS_NAMES) else f"counter_{i}"): v for i, v in enumerate(values)}


def encode_stats(values: list[int]) -> bytes:
    return struct.pack(f">H{len(values)}Q", len(values), *values)


def decode_attest(payload: bytes) -> tuple[bytes, bytes]:
    """(nonce echoed, blob)."""
    (nlen,) = struct.unpack_from(">H", payload)
    return payload[2:2 + nlen], payload[2 + nlen:]


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
               ("DTE_NET_MAC", "{" + ", ".join(f"0x{b:02x}" for b in mac_bytes) + "}")]
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
