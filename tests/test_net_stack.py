"""The C network stack + token protocol server (firmware/net) against the independent Python codec and client,
over real UDP sockets on 127.0.0.1 through the hosted loopnic (tests/devmodels), with a fake engine.

Raw Ethernet frames (ARP, ICMP, UDP from a non-peer address) are built and checked here with `struct`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import socket
import struct
import subprocess
import time
import warnings
from collections.abc import Iterator

import pytest

from dte_build import protocol as p
from dte_build.client import Generation, RemoteError, generate_remote
from net_helpers import (
    DROP_COUNTERS,
    KEY,
    NIC_MAC,
    OUR_IP,
    OUR_MAC,
    STACK_IP,
    Server,
    authentic,
    bad_traffic,
    fake_ids,
    fuzz_frame,
    no_answer,
    open_raw,
)

@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    s = Server(delay_us=0)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def slow_server() -> Iterator[Server]:
    s = Server(delay_us=20_000)   # 20 ms per generated token: time to queue and cancel
    yield s
    s.stop()


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[Server]:
    """The server built with AddressSanitizer + UBSan when the runtime is installed (libclang-rt-19-dev)."""
    try:
        s = Server(delay_us=0, sanitize=True)
    except subprocess.CalledProcessError:
        warnings.warn("sanitizer runtime missing (apt-get install libclang-rt-19-dev): fuzzing unsanitized")
        s = Server(delay_us=0)
    yield s
    report = s.stop()
    assert "Sanitizer" not in report and "runtime error" not in report, report


@pytest.fixture()
def raw(server: Server) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", server.raw_port))
    sock.settimeout(2.0)
    yield sock
    sock.close()


# ---- token protocol ----------------------------------------------------------------------------------------

def test_generate_remote_matches_the_fake_engine(server: Server) -> None:
    out = generate_remote("127.0.0.1", server.port, KEY, "Hello, echo", 12, 0.0, seed=5)
    assert out["prompt_ids"] == list(b"Hello, echo")
    assert out["ids"] == fake_ids("Hello, echo", 5, 12)
    assert out["text"] == bytes(fake_ids("Hello, echo", 5, 12)).decode()
    assert out["tok_per_s"] == pytest.approx(500_000)          # 2000 ns per token, fake engine
    assert out["prompt_tok_per_s"] == pytest.approx(1_000_000)
    assert set(out) == {"prompt_ids", "ids", "text", "tok_per_s", "prompt_tok_per_s"}


def test_ping_attest_stats_and_engine_error(server: Server) -> None:
    with server.client() as c:
        assert c.ping(b"x" * 64) < 1.0
        nonce = b"n0nce-1234"
        assert c.attest(nonce) == b"FAKEATT1" + hashlib.sha256(nonce).digest()
        stats = c.stats()
        assert set(p.STATS_NAMES) - set(p.THERMAL_STATS_NAMES) <= set(stats) and stats["served"] >= 3
        with pytest.raises(RemoteError, match="ENGINE"):
            c.generate(p.Prompt("FAIL"))
        with pytest.raises(RemoteError, match="BAD_REQUEST"):
            c.ping(b"x" * 65)
        with pytest.raises(RemoteError, match="NOT_RUNNING"):
            c.request(p.FrameType.CANCEL, b"", p.FrameType.DONE)


def test_bad_traffic_is_dropped_counted_and_service_continues(server: Server) -> None:
    attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    attacker.connect(("127.0.0.1", server.port))
    with server.client() as monitor:
        session = open_raw(attacker)
        attacker.send(authentic(p.FrameType.PING, session, 2, b"hello"))   # the frame that will be replayed
        assert p.decode_frame(KEY, attacker.recv(2048), expect_response=True).payload == b"hello"
        for name, counter, data in bad_traffic(session):
            before = monitor.stats()
            attacker.send(data)
            assert no_answer(attacker), f"{name}: answered"
            after = monitor.stats()
            assert after[counter] == before[counter] + 1, name
            dropped = sum(after[k] - before[k] for k in DROP_COUNTERS)
            assert dropped == 1, name
            assert after["served"] == before["served"] + 1, name   # only the STATS request itself
            assert monitor.ping() < 1.0, f"{name}: next good request not served"
    attacker.close()


def test_bounded_fuzz_loop_on_loopback(fuzz_server: Server) -> None:
    server = fuzz_server
    rng = random.Random(11)
    fuzzer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    fuzzer.connect(("127.0.0.1", server.port))
    deadline = time.monotonic() + 30.0
    sent = 0
    session = open_raw(fuzzer)
    with server.client() as monitor:
        before = monitor.stats()
        while sent < 3000 and time.monotonic() < deadline:
            for _ in range(100):                     # batches, then a round trip, so no socket buffer overflows
                fuzzer.send(fuzz_frame(rng, sent + 2, session))
                sent += 1
            monitor.ping()
        after = monitor.stats()
    assert sent == 3000
    assert no_answer(fuzzer)
    dropped = sum(after[k] - before[k] for k in DROP_COUNTERS)
    assert after["rx_frames"] - before["rx_frames"] == sent + 31    # + 30 PINGs + 1 STATS
    assert dropped == sent
    assert after["served"] - before["served"] == 31
    assert server.alive()
    fuzzer.close()


# ---- sessions: cancel, queue, busy ---------------------------------------------------------------------------

def test_cancel_mid_stream(slow_server: Server) -> None:
    with slow_server.client() as c:
        result = c.generate(p.Prompt("cancel me", n_predict=200, seed=1), cancel_after=5)
        assert result.cancelled
        assert 5 <= len(result.ids) < 200 and result.done.generated_tokens == len(result.ids)
        assert result.ids == fake_ids("cancel me", 1, len(result.ids))
        again = c.generate(p.Prompt("after", n_predict=3, seed=2))   # the same session serves again
        assert again.ids == fake_ids("after", 2, 3) and not again.cancelled


def test_one_generation_at_a_time_fifo_queue_then_busy(slow_server: Server) -> None:
    clients = [slow_server.client() for _ in range(7)]
    try:
        first, queued, extra = clients[0], clients[1:5], clients[5]
        running = Generation()
        first.send(p.FrameType.PROMPT, p.Prompt("first", n_predict=30, seed=3).encode())
        first.collect(running, until_first=p.FrameType.TOKENS)     # it is generating now
        waiting = []
        for position, c in enumerate(queued, start=1):
            g = Generation()
            c.send(p.FrameType.PROMPT, p.Prompt(f"q{position}", n_predict=2, seed=position).encode())
            c.collect(g, until_first=p.FrameType.QUEUED)
            assert g.queued_at == [position]
            waiting.append(g)
        with pytest.raises(RemoteError, match="BUSY"):
            extra.generate(p.Prompt("one too many", n_predict=2))
        assert clients[6].stats()["busy"] >= 1                     # answered while generating
        with pytest.raises(RemoteError, match="WRONG_STATE"):
            queued[0].request(p.FrameType.PROMPT, p.Prompt("again").encode(), p.FrameType.QUEUED)
        queued[1].cancel()                                          # leaves the queue at once
        queued[1].collect(waiting[1])
        assert waiting[1].cancelled and waiting[1].ids == []
        first.collect(running)
        assert running.ids == fake_ids("first", 3, 30)
        for i in (0, 2, 3):
            queued[i].collect(waiting[i])
            assert waiting[i].ids == fake_ids(f"q{i + 1}", i + 1, 2)
        # the appliance numbers every frame it sends from one counter: the DONEs' order is the serving order
        done_order = [first.window.highest] + [queued[i].window.highest for i in (0, 2, 3)]
        assert done_order == sorted(done_order), "served FIFO"
    finally:
        for c in clients:
            c.close()


# ---- raw Ethernet: ARP, ICMP, UDP checksums ------------------------------------------------------------------

def inet_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f">{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4_frame(proto: int, payload: bytes, *, flags_frag: int = 0x4000, bad_checksum: bool = False) -> bytes:
    header = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 99, flags_frag, 64, proto, 0, OUR_IP, STACK_IP)
    checksum = inet_checksum(header) ^ (0x1 if bad_checksum else 0)
    header = header[:10] + struct.pack(">H", checksum) + header[12:]
    return NIC_MAC + OUR_MAC + b"\x08\x00" + header + payload


def udp_datagram(src_port: int, payload: bytes, *, checksum: str = "good") -> bytes:
    head = struct.pack(">HHHH", src_port, 7777, 8 + len(payload), 0)
    if checksum == "zero":
        return head + payload
    pseudo = OUR_IP + STACK_IP + struct.pack(">BBH", 0, 17, 8 + len(payload))
    value = inet_checksum(pseudo + head + payload) or 0xFFFF
    if checksum == "bad":
        value ^= 0x0100
    return head[:6] + struct.pack(">H", value) + payload


def parse_ipv4_reply(frame: bytes) -> tuple[bytes, int, bytes]:
    """Checks Ethernet + IPv4 of a reply to us; returns (ip header, protocol, payload)."""
    assert frame[0:6] == OUR_MAC and frame[6:12] == NIC_MAC and frame[12:14] == b"\x08\x00"
    ip = frame[14:34]
    ver_ihl, _, total, _, _, _, proto, _, src, dst = struct.unpack(">BBHHHBBH4s4s", ip)
    assert ver_ihl == 0x45 and src == STACK_IP and dst == OUR_IP
    assert inet_checksum(ip) == 0, "IPv4 header checksum"
    return ip, proto, frame[34:14 + total]


def test_arp_request_gets_a_reply(server: Server, raw: socket.socket) -> None:
    arp = struct.pack(">HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, OUR_MAC, OUR_IP, bytes(6), STACK_IP)
    raw.send(b"\xff" * 6 + OUR_MAC + b"\x08\x06" + arp)
    reply = raw.recv(2048)
    assert reply[0:6] == OUR_MAC and reply[6:12] == NIC_MAC and reply[12:14] == b"\x08\x06"
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = struct.unpack_from(">HHBBH6s4s6s4s", reply, 14)
    assert (htype, ptype, hlen, plen, op) == (1, 0x0800, 6, 4, 2)
    assert (sha, spa, tha, tpa) == (NIC_MAC, STACK_IP, OUR_MAC, OUR_IP)
    assert len(reply) >= 60                                          # padded to the Ethernet minimum
    other = struct.pack(">HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, OUR_MAC, OUR_IP, bytes(6), bytes([10, 0, 2, 99]))
    raw.send(b"\xff" * 6 + OUR_MAC + b"\x08\x06" + other)
    assert no_answer(raw)                                            # not our address


def test_icmp_echo_reply_and_bad_packets(server: Server, raw: socket.socket) -> None:
    data = bytes(range(56))
    echo = struct.pack(">BBHHH", 8, 0, 0, 0x1234, 7) + data
    echo = echo[:2] + struct.pack(">H", inet_checksum(echo)) + echo[4:]
    raw.send(ipv4_frame(1, echo))
    _, proto, icmp = parse_ipv4_reply(raw.recv(2048))
    assert proto == 1 and inet_checksum(icmp) == 0
    assert struct.unpack_from(">BBxxHH", icmp) == (0, 0, 0x1234, 7) and icmp[8:] == data
    with server.client() as monitor:
        before = monitor.stats()
        raw.send(ipv4_frame(1, echo, bad_checksum=True))
        raw.send(ipv4_frame(1, echo, flags_frag=0x2000))             # more fragments
        raw.send(ipv4_frame(1, echo, flags_frag=0x0010))             # a fragment offset
        assert no_answer(raw)
        after = monitor.stats()
    assert after["net_bad_checksum"] - before["net_bad_checksum"] == 1
    assert after["net_fragments"] - before["net_fragments"] == 2
    assert after["net_icmp_replies"] >= 1


def test_udp_from_another_host_checksums_both_ways(server: Server, raw: socket.socket) -> None:
    ping = authentic(p.FrameType.PING, 0, 1, b"raw path")   # sessionless: answered with a PONG of its size
    raw.send(ipv4_frame(17, udp_datagram(5555, ping)))
    ip, proto, udp = parse_ipv4_reply(raw.recv(2048))
    assert proto == 17
    src_port, dst_port, length, checksum = struct.unpack_from(">HHHH", udp)
    assert (src_port, dst_port, length) == (7777, 5555, len(udp)) and checksum != 0
    pseudo = STACK_IP + OUR_IP + struct.pack(">BBH", 0, 17, length)
    assert inet_checksum(pseudo + udp) == 0, "UDP checksum"
    answer = p.decode_frame(KEY, udp[8:], expect_response=True)
    assert (answer.type, answer.session, answer.payload) == (p.FrameType.PONG, 0, b"raw path")
    # checksum 0 means "none" (RFC 768): accepted; a wrong checksum: dropped and counted
    raw.send(ipv4_frame(17, udp_datagram(5555, authentic(p.FrameType.PING, 0, 2, b"z"), checksum="zero")))
    assert p.decode_frame(KEY, parse_ipv4_reply(raw.recv(2048))[2][8:]).payload == b"z"
    with server.client() as monitor:
        before = monitor.stats()
        raw.send(ipv4_frame(17, udp_datagram(5555, authentic(p.FrameType.PING, 0, 3), checksum="bad")))
        assert no_answer(raw)
        assert monitor.stats()["net_bad_checksum"] == before["net_bad_checksum"] + 1


# ---- CLI ---------------------------------------------------------------------------------------------------

def test_cli_keygen_remote_stats_and_chat(server: Server, tmp_path) -> None:
    from click.testing import CliRunner

    from dte_build.cli import main

    runner = CliRunner()
    key_file = tmp_path / "appliance.key"
    assert runner.invoke(main, ["keygen", "-o", str(key_file)]).exit_code == 0
    assert len(p.load_key(key_file)) == 32
    good_key = tmp_path / "good.key"
    good_key.write_text(KEY.hex() + "\n")
    good_key.chmod(0o600)
    endpoint = f"127.0.0.1:{server.port}"
    out = runner.invoke(main, ["remote", "stats", endpoint, "--key", str(good_key), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["served"] >= 1
    chat = runner.invoke(main, ["chat", endpoint, "--key", str(good_key), "-n", "4", "--seed", "9"],
                         input="hi there\n\n")
    assert chat.exit_code == 0, chat.output
    assert bytes(fake_ids("hi there", 9, 4)).decode() in chat.stdout
    wrong = runner.invoke(main, ["remote", "ping", endpoint, "--key", str(key_file), "--timeout", "0.5"])
    assert wrong.exit_code != 0 and "no answer" in wrong.output     # a wrong key is never answered


def raw_fuzz_frame(rng: random.Random) -> bytes:
    """A random Ethernet frame near the stack's parsers: mutated ARP, ICMP, UDP, or plain noise."""
    arp = b"\xff" * 6 + OUR_MAC + b"\x08\x06" + struct.pack(">HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, OUR_MAC,
                                                            OUR_IP, bytes(6), STACK_IP)
    echo = struct.pack(">BBHHH", 8, 0, 0, 1, 1) + rng.randbytes(rng.randrange(0, 64))
    udp = udp_datagram(rng.randrange(1, 65536), authentic(p.FrameType.PING, 31337, rng.randrange(1, 1 << 40)))
    frame = bytearray(rng.choice([arp, ipv4_frame(1, echo), ipv4_frame(17, udp)]))
    kind = rng.randrange(6)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 2100))
    if kind == 1:
        return bytes(frame[:rng.randrange(len(frame))])
    if kind == 2 and len(frame) > 34:
        frame[14] = 0x40 | rng.randrange(16)                       # any IHL
    elif kind == 3 and len(frame) > 34:
        frame[16:18] = struct.pack(">H", rng.randrange(65536))     # any IPv4 total length
    elif kind == 4 and len(frame) > 42:
        frame[38:40] = struct.pack(">H", rng.randrange(65536))     # any UDP length
    for _ in range(rng.randrange(0, 4)):
        frame[rng.randrange(len(frame))] = rng.randrange(256)
    return bytes(frame)


def test_bounded_raw_ethernet_fuzz(fuzz_server: Server) -> None:
    rng = random.Random(23)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", fuzz_server.raw_port))
    deadline = time.monotonic() + 30.0
    sent = 0
    with fuzz_server.client() as monitor:
        before = monitor.stats()
        while sent < 3000 and time.monotonic() < deadline:
            for _ in range(100):
                sock.send(raw_fuzz_frame(rng))
                sent += 1
            monitor.ping()
            while not no_answer(sock, 0.001):                       # drain any ARP/ICMP replies it earned
                pass
        after = monitor.stats()
    sock.close()
    assert sent == 3000 and fuzz_server.alive()
    frames = after["net_rx_frames"] - before["net_rx_frames"]
    assert 2500 <= frames <= sent + 31    # loopnic drops frames over the stack's 2048-byte buffer
    assert after["net_bad_checksum"] > before["net_bad_checksum"]


def test_a_cancel_that_crosses_done_leaves_no_stray_answer(server: Server) -> None:
    with server.client() as c:
        finished = c.generate(p.Prompt("quick", n_predict=2, seed=4))
        assert not finished.cancelled
        c.cancel()                       # nothing runs any more: the appliance answers NOT_RUNNING
        assert c.ping(b"next") < 1.0     # ... which the client swallows instead of taking it for the PONG
        assert c.generate(p.Prompt("again", n_predict=2, seed=4)).ids == fake_ids("again", 4, 2)


@pytest.mark.parametrize("fields,text", [
    ((0, 0.0, 0, 1.0, 0), b"x"),                       # n_predict 0
    ((4097, 0.0, 0, 1.0, 0), b"x"),                    # above the 4096 cap
    ((4, float("nan"), 0, 1.0, 0), b"x"),              # NaN temperature
    ((4, 0.0, 0, 1.5, 0), b"x"),                       # top_p above 1
    ((4, 0.0, 0, 1.0, 0), b""),                        # no text
], ids=["n0", "n4097", "nan-temp", "top-p", "empty"])
def test_out_of_range_prompts_get_bad_request(server: Server, fields: tuple, text: bytes) -> None:
    with server.client() as c:
        with pytest.raises(RemoteError, match="BAD_REQUEST"):
            c.request(p.FrameType.PROMPT, p.PROMPT_FIXED.pack(*fields) + text, p.FrameType.TOKENS)
        assert c.ping() < 1.0


def test_frame_size_boundary_1472_served_1473_too_large(server: Server) -> None:
    with server.client() as c:
        longest = p.Prompt("y" * 1388, n_predict=1, seed=0).encode()          # 28 + 1412 + 32 = 1472 bytes
        assert len(p.encode_frame(KEY, p.Frame(1, 1, 1, longest))) == 1472
        result = c.generate(p.Prompt("y" * 1388, n_predict=1, seed=0))
        assert result.prompt_ids == [ord("y")] * 1388
        before = c.stats()
        body = p.HEADER.pack(p.MAGIC, 1, p.FrameType.PING, 0, c.session, 1000, 1413) + bytes(1413)
        c.sock.send(body + hmac.new(KEY, body, hashlib.sha256).digest())    # authentic, but 1473 bytes
        after = c.stats()
        assert after["too_large"] == before["too_large"] + 1 and after["bad_tag"] == before["bad_tag"]
