"""The hosted token-protocol server (tests/devmodels/netserve.c: firmware/net + a fake engine on loopback) and the
frames tests send it — shared by the network, session, chat, serve and fleet tests."""

from __future__ import annotations

import hashlib
import random
import socket
import subprocess

from _hostc import build, firmware
from dte_build import protocol as p
from dte_build.client import Client
from dte_build.paths import REPO_ROOT

KEY = bytes.fromhex("00112233445566778899aabbccddeeff" * 2)
NIC_MAC = bytes.fromhex("525400123456")
STACK_IP = bytes([10, 0, 2, 15])
OUR_MAC = bytes.fromhex("020000000001")
OUR_IP = bytes([10, 0, 2, 3])


def fake_ids(prompt: str, seed: int, n: int) -> list[int]:
    """The fake engine's documented generation rule (tests/devmodels/netserve.c)."""
    total = sum(prompt.encode())
    return [97 + (seed + 7 * i + total) % 26 for i in range(n)]


FAKE_MODEL_NAME = "netserve-fake-model"   # what the hosted server's INFO answers by default (its argv)
FAKE_MODEL_SHA256 = hashlib.sha256(FAKE_MODEL_NAME.encode()).hexdigest()


class Server:
    """netserve (tests/devmodels/netserve.c) in a subprocess; `sanitize` builds it with ASan + UBSan."""

    def __init__(self, delay_us: int, *, sanitize: bool = False, idle_timeout_ms: int = 0,
                 model_name: str = FAKE_MODEL_NAME, model_sha256: str = FAKE_MODEL_SHA256) -> None:
        exe = build("netserve", firmware("net/net_stack.c", "net/proto.c", "net/proto_session.c", "engine/conversation.c",
                                        "lib/sha256.c", "lib/hmac_sha256.c")
                    + [REPO_ROOT / "tests/devmodels/loopnic.c", REPO_ROOT / "tests/devmodels/netserve.c"],
                    shared=False, sanitize=sanitize)
        self.sanitized = sanitize
        exact = "1" if sanitize else "0"   # frames in exactly-sized heap blocks, so ASan sees over-reads
        self.proc = subprocess.Popen([str(exe), KEY.hex(), str(delay_us), "120", exact, str(idle_timeout_ms), "-",
                                      model_name, model_sha256],
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"netserve did not start: {self.proc.stderr.read()}")
        fields = dict(item.split("=") for item in line.split()[1:])
        self.port, self.raw_port = int(fields["proto_port"]), int(fields["raw_port"])

    def client(self, timeout: float = 5.0) -> Client:
        return Client("127.0.0.1", self.port, KEY, timeout=timeout)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> str:
        """Stops the server; returns what it wrote to stderr (sanitizer reports)."""
        self.proc.terminate()
        _, stderr = self.proc.communicate(timeout=10)
        return stderr


def no_answer(sock: socket.socket, wait: float = 0.2) -> bool:
    sock.settimeout(wait)
    try:
        sock.recv(65536)
    except (TimeoutError, BlockingIOError):
        return True
    return False


def authentic(ftype: int, session: int, seq: int, payload: bytes = b"", flags: int = 0, key: bytes = KEY) -> bytes:
    return p.encode_frame(key, p.Frame(ftype, session, seq, payload, flags))


def open_raw(sock: socket.socket, key: bytes = KEY) -> int:
    """HELLO -> COOKIE -> OPEN -> OPENED on a plain UDP socket; the session id (its OPEN was sequence 1)."""
    nonce = random.randbytes(p.CLIENT_NONCE)
    sock.send(authentic(p.FrameType.HELLO, 0, 1, p.encode_hello(nonce), key=key))
    cookie = p.decode_frame(key, sock.recv(2048), expect_response=True)
    assert cookie.type == p.FrameType.COOKIE and cookie.session == 0
    offered, echoed, token = p.decode_cookie(cookie.payload)
    assert echoed == nonce
    sock.send(authentic(p.FrameType.OPEN, offered, 1, nonce + token, key=key))
    opened = p.decode_frame(key, sock.recv(2048), expect_response=True)
    assert (opened.type, opened.session) == (p.FrameType.OPENED, offered)
    return offered


def bad_traffic(session: int) -> list[tuple[str, str, bytes]]:
    """Frames to drop, for a session the sender opened; the valid setup frame is PING sequence 2."""
    rng = random.Random(7)
    ping = authentic(p.FrameType.PING, session, 2, b"hello")
    flipped = bytearray(ping)
    flipped[-5] ^= 0x10
    big_payload = bytes(1800 - 60)
    oversized = p.HEADER.pack(p.MAGIC, p.VERSION, 10, 0, session, 3, len(big_payload)) + big_payload
    oversized += hashlib.sha256(oversized).digest()   # shape right, far too big
    return [
        ("random bytes", "malformed", rng.randbytes(200)),
        ("truncated frame", "malformed", ping[:45]),
        ("truncated tag", "malformed", ping[:-1]),
        ("wrong key", "bad_tag", authentic(p.FrameType.PING, session, 3, b"x", key=bytes(32))),
        ("flipped tag bit", "bad_tag", bytes(flipped)),
        ("replayed frame", "replay", ping),      # sent once as the valid setup frame below
        ("oversized frame", "too_large", oversized),
        ("unknown type", "unknown_type", authentic(99, session, 4)),
        ("response flag on a request", "malformed", authentic(p.FrameType.PING, session, 5, flags=p.FLAG_RESPONSE)),
        ("protocol version 1", "malformed", authentic(p.FrameType.PING, session, 6)[:4] + b"\x01" +
         authentic(p.FrameType.PING, session, 6)[5:]),
        ("a COOKIE sent back as a request", "malformed",
         authentic(p.FrameType.COOKIE, 0, 7, bytes(40), flags=p.FLAG_RESPONSE)),
        ("HELLO smaller than its COOKIE", "malformed", authentic(p.FrameType.HELLO, 0, 8, bytes(39))),
        ("OPEN with a forged cookie", "bad_cookie", authentic(p.FrameType.OPEN, session + 1, 1, bytes(32))),
        ("sessionless STATS_REQUEST", "unknown_type", authentic(p.FrameType.STATS_REQUEST, 0, 9)),
    ]


DROP_COUNTERS = ("malformed", "too_large", "bad_tag", "replay", "unknown_type", "bad_cookie", "wrong_peer")


def fuzz_frame(rng: random.Random, seq: int, session: int) -> bytes:
    """A frame to drop, near the checks, for a session the sender opened (docs/protocol.md "Checks")."""
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 1473))
    good = authentic(rng.choice([1, 4, 6, 8, 10, 15, 18]), session, seq, rng.randbytes(rng.randrange(0, 100)))
    if kind == 1:                                   # flip one random bit anywhere
        data = bytearray(good)
        bit = rng.randrange(len(data) * 8)
        data[bit // 8] ^= 1 << (bit % 8)
        return bytes(data)
    if kind == 2:                                   # cut or extend
        return good[:rng.randrange(len(good))] if rng.random() < 0.5 else good + rng.randbytes(rng.randrange(1, 50))
    if kind == 3:                                   # authentic but not a request type
        return authentic(rng.choice([0, 2, 3, 5, 7, 9, 11, 12, 13, 14, 16, 17, 200, 255]), session, seq,
                         rng.randbytes(8))
    return authentic(10, session, seq, flags=rng.choice([0x8000, 0x0001, 0x0002, 0x0100]))   # flags forbidden


def fake_turns(turns: list[str], seed: int, n: int) -> list[str]:
    """The fake engine's replies to user turns appended to one session: each generated token depends on the sum
    of every id in the transcript (the turns' bytes and the tokens generated before)."""
    transcript: list[int] = []
    replies = []
    for text in turns:
        transcript += list(text.encode())
        total = sum(transcript)
        ids = [97 + (seed + 7 * i + total) % 26 for i in range(n)]
        transcript += ids
        replies.append(bytes(ids).decode())
    return replies
