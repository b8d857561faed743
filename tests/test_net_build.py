"""Build options for the appliance's network server (`dte build --net --key`): what goes into dte_config.h.

Expected values are spec facts computed here independently: IPv4 addresses as host-order integers
(`socket.inet_aton` + big-endian), the key bytes as given to the key file."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest

from dte_build import protocol as p
from dte_build.board import load_board
from dte_build.appliance import apply_network
from dte_build.errors import DteError
from dte_build.netboot import net_qemu_args, network_options
from dte_build.toolchain import FirmwareOptions, config_header

KEY = bytes(range(0xA0, 0xC0))


def test_net_without_a_key_is_refused_with_a_hint() -> None:
    board = load_board("qemu-q35")
    with pytest.raises(DteError, match="--net needs --key") as info:
        apply_network(board, FirmwareOptions(), True, None)
    assert "dte keygen" in (info.value.hint or "")
    with pytest.raises(DteError, match="never serves unauthenticated"):
        network_options(board, FirmwareOptions(), None)


def test_no_net_leaves_the_options_alone() -> None:
    options = FirmwareOptions()
    assert apply_network(load_board("qemu-q35"), options, False, None) is options


def test_key_file_compiles_the_server_in(tmp_path: Path) -> None:
    board = load_board("qemu-q35")
    key_file = p.write_key(tmp_path / "k", KEY)
    options = apply_network(board, FirmwareOptions(extra_defines={"DTE_BENCH_BLOCKIO": "1"}), False, str(key_file))
    header = config_header(board, options, "0" * 16)
    ip = struct.unpack(">I", socket.inet_aton(board.network["ipv4"]))[0]
    mask = struct.unpack(">I", socket.inet_aton(board.network["netmask"]))[0]
    assert "#define DTE_NET_ENABLED 1" in header
    assert f"#define DTE_NET_IPV4 0x{ip:08X}u" in header and f"#define DTE_NET_NETMASK 0x{mask:08X}u" in header
    assert f"#define DTE_NET_PORT {board.network['port']}u" in header
    assert "#define DTE_PROTO_HAS_KEY 1" in header
    assert "#define DTE_PROTO_KEY {" + ", ".join(f"0x{b:02x}" for b in KEY) + "}" in header
    assert "#define DTE_BENCH_BLOCKIO 1" in header   # other defines kept


def test_qemu_forward_is_bound_to_localhost_only() -> None:
    args = net_qemu_args(40000, 7777)
    netdev = args[args.index("-netdev") + 1]
    assert "hostfwd=udp:127.0.0.1:40000-:7777" in netdev and netdev.count("hostfwd") == 1
    assert "restrict=off" in netdev   # slirp drops a restricted guest's UDP (docs/protocol.md)


def test_cli_refusals_are_one_line_with_a_hint(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from dte_build.cli import main

    runner = CliRunner()
    cases = [
        (["build", "--board", "qemu-q35", "--net", "-o", str(tmp_path / "x.img")], "--net needs --key"),
        (["generate", "--remote", "127.0.0.1:7777", "-p", "hi"], "--remote needs the appliance key"),
        (["generate", "-p", "hi"], "no model to run"),
        (["run", "--net", "--drive", "ide", str(p.write_key(tmp_path / "k", KEY))], "--net boots from NVMe only"),
    ]
    for args, message in cases:
        result = runner.invoke(main, args)
        assert result.exit_code != 0 and message in result.output, (args, result.output)
    assert not (tmp_path / "x.img").exists()
