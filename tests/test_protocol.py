"""The Python codec of docs/protocol.md: layout against the spec's byte offsets, round trips, checks, keys.

The C side (firmware/net/proto.c) is checked against this codec in tests/test_net_stack.py.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat

import pytest

from dte_build import protocol as p
from dte_build.errors import DteError

KEY = bytes(range(32))


def test_frame_layout_follows_the_spec_offsets() -> None:
    wire = p.encode_frame(KEY, p.Frame(p.FrameType.PING, 0x0102030405060708, 0x1112131415161718, b"hi"))
    assert wire[0:4] == b"DTE1"
    assert wire[4] == 2 and wire[5] == 10                     # version, type PING
    assert wire[6:8] == b"\x00\x00"                            # flags
    assert wire[8:16] == bytes([1, 2, 3, 4, 5, 6, 7, 8])       # session, big-endian
    assert wire[16:24] == bytes([0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18])
    assert wire[24:28] == b"\x00\x00\x00\x02" and wire[28:30] == b"hi"
    assert wire[30:] == hmac.new(KEY, wire[:30], hashlib.sha256).digest()
    assert len(wire) == 28 + 2 + 32


def test_round_trip_of_every_type() -> None:
    for ftype in p.FrameType:
        frame = p.Frame(int(ftype), 77, 5, os.urandom(40), p.FLAG_RESPONSE)
        assert p.decode_frame(KEY, p.encode_frame(KEY, frame)) == frame


@pytest.mark.parametrize("mutate,kind", [
    (lambda w: w[:59], "malformed"),
    (lambda w: b"XTE1" + w[4:], "malformed"),
    (lambda w: w[:4] + b"\x01" + w[5:], "malformed"),           # version 1 frames are not read by version 2
    (lambda w: w[:-1] + bytes([w[-1] ^ 1]), "bad_tag"),
    (lambda w: w[:30] + bytes([w[30] ^ 0x80]) + w[31:], "bad_tag"),
    (lambda w: w + b"\x00", "malformed"),
    (lambda w: w + bytes(p.MAX_FRAME), "too_large"),
])
def test_bad_frames_are_classified(mutate, kind: str) -> None:
    wire = p.encode_frame(KEY, p.Frame(p.FrameType.PING, 9, 1, b"payload"))
    with pytest.raises(p.ProtocolError) as info:
        p.decode_frame(KEY, mutate(wire))
    assert info.value.kind == kind


def test_wrong_key_is_a_bad_tag() -> None:
    wire = p.encode_frame(bytes(32), p.Frame(p.FrameType.PING, 9, 1))
    with pytest.raises(p.ProtocolError, match="HMAC"):
        p.decode_frame(KEY, wire)


def test_response_flag_must_match_the_direction() -> None:
    wire = p.encode_frame(KEY, p.Frame(p.FrameType.PONG, 9, 1, flags=p.FLAG_RESPONSE))
    assert p.decode_frame(KEY, wire, expect_response=True).type == p.FrameType.PONG
    with pytest.raises(p.ProtocolError):
        p.decode_frame(KEY, wire, expect_response=False)


def test_replay_window_rfc4303_semantics() -> None:
    w = p.ReplayWindow()
    assert not w.accept(0)
    assert w.accept(1) and not w.accept(1)
    assert w.accept(100)
    assert w.accept(37) and not w.accept(37)            # inside the window (100-63 .. 100), first time
    assert not w.accept(36)                              # 64 below the highest: outside the window
    assert w.accept(99) and w.accept(1000) and not w.accept(936) and w.accept(937) and not w.accept(937)


def test_prompt_payload_layout() -> None:
    payload = p.Prompt("héllo", n_predict=7, temperature=0.5, top_k=40, top_p=0.9, seed=3).encode()
    assert payload[:4] == b"\x00\x00\x00\x07"
    assert payload[4:8] == bytes.fromhex("3f000000")    # 0.5 as IEEE 754 binary32
    assert payload[8:12] == b"\x00\x00\x00\x28"
    assert payload[16:24] == b"\x00" * 7 + b"\x03"
    assert payload[24:] == "héllo".encode()
    back = p.Prompt.decode(payload)
    assert back.text == "héllo" and back.n_predict == 7 and back.top_k == 40 and abs(back.top_p - 0.9) < 1e-6


def test_prompt_limits_are_user_errors() -> None:
    with pytest.raises(DteError):
        p.Prompt("x" * (p.MAX_PROMPT_TEXT + 1)).encode()
    with pytest.raises(DteError):
        p.Prompt("x", n_predict=0).encode()


def test_tokens_done_stats_attest_payloads() -> None:
    toks = [p.Token(5, b"he"), p.Token(70000, b""), p.Token(2, "é".encode())]
    assert p.decode_tokens(p.encode_tokens(3, toks)) == (3, toks)
    assert p.encode_tokens(1, [p.Token(2, b"a")]) == bytes.fromhex("00000001" "0001" "00000002" "0001") + b"a"
    done = p.Done(2, 4, 5, 6, 7, 8, 9)
    assert p.Done.decode(done.encode()) == done and len(done.encode()) == 36
    assert done.encode()[28:] == bytes.fromhex("00000008" "00000009")   # reused_tokens, context_used
    assert p.decode_stats(p.encode_stats([1, 2, 3]))["too_large"] == 3
    assert p.decode_attest(b"\x00\x02ab" + b"blob") == (b"ab", b"blob")


def test_key_files_hex_raw_and_errors(tmp_path) -> None:
    key = p.generate_key()
    hex_path = p.write_key(tmp_path / "k.hex", key)
    assert stat.S_IMODE(hex_path.stat().st_mode) == 0o600
    assert hex_path.read_text() == key.hex() + "\n"
    assert p.load_key(hex_path) == key
    assert p.load_key(p.write_key(tmp_path / "k.raw", key, raw=True)) == key
    with pytest.raises(DteError, match="already exists"):
        p.write_key(hex_path, key)
    with pytest.raises(DteError, match="not found"):
        p.load_key(tmp_path / "missing")
    (tmp_path / "short").write_text("abcd\n")
    with pytest.raises(DteError, match="not a key"):
        p.load_key(tmp_path / "short")


def test_c_network_defines_from_a_board_table() -> None:
    network = {"ipv4": "192.0.2.10", "netmask": "255.255.255.0", "gateway": "192.0.2.1", "port": 7777, "mac": "nic"}
    defines = dict(p.c_network_defines(network, KEY))
    assert defines["DTE_NET_IPV4"] == "0xC000020Au"                # 192 = 0xC0, 0 = 0x00, 2 = 0x02, 10 = 0x0A
    assert defines["DTE_NET_NETMASK"] == "0xFFFFFF00u" and defines["DTE_NET_PORT"] == "7777u"
    assert defines["DTE_NET_MAC"] == "{" + ", ".join(["0x00"] * 6) + "}"
    assert defines["DTE_PROTO_KEY"].startswith("{0x00, 0x01, 0x02") and defines["DTE_PROTO_HAS_KEY"] == "1"
    fixed = dict(p.c_network_defines({**network, "mac": "02:00:00:aa:bb:cc"}, None))
    assert fixed["DTE_NET_MAC"] == "{0x02, 0x00, 0x00, 0xaa, 0xbb, 0xcc}" and fixed["DTE_PROTO_HAS_KEY"] == "0"
    assert defines["DTE_NET_IDLE_TIMEOUT_S"] == "600u"                   # board [network] session_idle_s default
    assert dict(p.c_network_defines({**network, "session_idle_s": 30}, KEY))["DTE_NET_IDLE_TIMEOUT_S"] == "30u"


def test_c_network_defines_compile_into_the_net_config(tmp_path) -> None:
    import subprocess

    from dte_build.paths import FIRMWARE_DIR
    from dte_build.toolchain import find_clang

    try:
        clang = find_clang()
    except DteError as exc:
        pytest.skip(f"no clang: {exc}")
    network = {"ipv4": "10.0.2.15", "netmask": "255.255.255.0", "gateway": "10.0.2.2", "port": 7777, "mac": "nic"}
    header = "".join(f"#define {name} {value}\n" for name, value in p.c_network_defines(network, KEY))
    (tmp_path / "cfg.h").write_text(header)
    (tmp_path / "use.c").write_text(
        '#include "cfg.h"\n#include "net/net_stack.h"\n'
        "static const unsigned char key[32] = DTE_PROTO_KEY;\n"
        "_Static_assert(DTE_NET_IPV4 == 0x0A00020Fu, \"10.0.2.15\");\n"
        "const dte_net_config cfg = {.ipv4 = DTE_NET_IPV4, .netmask = DTE_NET_NETMASK, .gateway = DTE_NET_GATEWAY,\n"
        "                            .udp_port = DTE_NET_PORT, .mac = DTE_NET_MAC};\n"
        "const unsigned char *k = key;\n")
    subprocess.run([clang, "-std=c11", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", f"-I{FIRMWARE_DIR}",
                    str(tmp_path / "use.c")], check=True, timeout=60)


# ---- hostile payloads (issue 15 item 2) -------------------------------------------------------------------------

def _decoders():
    return [p.decode_tokens, p.decode_error, p.decode_attest, p.decode_stats, p.Prompt.decode, p.Done.decode,
            p.decode_queued, p.decode_cookie, p.Opened.decode, p.ModelInfo.decode]


def _hostile_payloads(rng) -> list[bytes]:
    """Random bytes, truncations and extensions of valid payloads, and counts/lengths pointing past the end."""
    valid = [p.encode_tokens(3, [p.Token(5, b"he"), p.Token(2, "é".encode())]), p.encode_error(1, "busy"),
             b"\x00\x02ab" + b"blob", p.encode_stats([1, 2, 3]), p.Prompt("héllo", n_predict=3).encode(),
             p.Done(1, 2, 3, 4, 5, 6, 7).encode(), b"\x00\x00\x00\x01", bytes(40), bytes(12),
             bytes(32) + b"\x03abc"]
    out = [b"", b"\x00", b"\xff" * 3]
    for _ in range(3000):
        kind = rng.randrange(5)
        base = bytearray(rng.choice(valid))
        if kind == 0:
            out.append(rng.randbytes(rng.randrange(0, 80)))
        elif kind == 1:
            out.append(bytes(base[:rng.randrange(len(base) + 1)]))
        elif kind == 2:
            out.append(bytes(base) + rng.randbytes(rng.randrange(1, 20)))
        else:
            for _ in range(rng.randrange(1, 4)):
                base[rng.randrange(len(base))] = rng.choice([0, 0xFF, 0x80, 0xC3, rng.randrange(256)])
            out.append(bytes(base))
    return out


def test_every_decoder_raises_only_the_protocol_error_on_hostile_payloads() -> None:
    import random

    rng = random.Random(15)
    tried = refused = 0
    for payload in _hostile_payloads(rng):
        for decode in _decoders():
            tried += 1
            try:
                decode(payload)
            except p.ProtocolError as exc:
                refused += 1
                assert isinstance(exc, DteError) and "\n" not in str(exc)
    assert tried > 25_000 and refused > tried // 2


def test_info_payload_layout() -> None:
    sha = bytes(range(32))                               # docs/protocol.md: SHA-256 (32), u8 name length, name
    info = p.ModelInfo.decode(sha + b"\x0adte-tiny-x")
    assert (info.sha256, info.name, info.known_sha256) == (sha.hex(), "dte-tiny-x", sha.hex())
    assert p.ModelInfo.decode(bytes(33)).known_sha256 is None and p.ModelInfo.decode(bytes(33)).name == ""
    for bad in (bytes(32), sha + b"\x05abc", sha + b"\x01ab"):
        with pytest.raises(p.ProtocolError):
            p.ModelInfo.decode(bad)


def test_prompt_text_rule_refuses_nul_and_invalid_utf8() -> None:
    with pytest.raises(DteError, match="NUL"):
        p.Prompt("a\x00b").encode()
    with pytest.raises(DteError, match="Unicode"):
        p.Prompt("lone \ud800 surrogate").encode()
    for raw in (b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"ab\xe2\x82"):
        with pytest.raises(DteError, match="UTF-8"):
            p.check_prompt_text(raw)
    p.check_prompt_text("ok ✓ \U0001F600".encode())
