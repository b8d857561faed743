"""Every `--json` output is one object with a "schema" version key, numbers as numbers, and validates against its
JSON Schema in docs/schemas/ (checked with the jsonschema package, Draft 2020-12)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import jsonschema
import pytest
from click.testing import CliRunner

from dte_build.board import load_board
from dte_build.cli import COMMANDS, main
from dte_build.kernels import KERNEL_SYMBOLS
from dte_build.paths import REPO_ROOT

SCHEMAS = REPO_ROOT / "docs" / "schemas"
PENDING: set[str] = set()


def _schema(name: str) -> dict:
    return json.loads((SCHEMAS / f"{name.replace(' ', '-')}.json").read_text())


def _json_commands() -> list[str]:
    ctx = click.Context(main)
    found: list[str] = []

    def walk(prefix: str, command: click.Command) -> None:
        if any(getattr(p, "name", None) == "as_json" for p in command.params) and not isinstance(command, click.Group):
            found.append(prefix)
        if isinstance(command, click.Group):
            if any(getattr(p, "name", None) == "as_json" for p in command.params):
                found.append(prefix)
            for sub in command.list_commands(ctx):
                walk(f"{prefix} {sub}", command.get_command(ctx, sub))

    for name in COMMANDS:
        walk(name, main.get_command(ctx, name))
    return found


def test_every_json_command_has_a_valid_schema() -> None:
    missing = [name for name in _json_commands() if name not in PENDING
               and not (SCHEMAS / f"{name.replace(' ', '-')}.json").is_file()]
    assert missing == [], f"no docs/schemas/ file for: {missing}"
    for path in SCHEMAS.glob("*.json"):
        jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text()))


def _validated(schema: str, args: list[str]) -> dict:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    jsonschema.validate(data, _schema(schema))
    assert data["schema"] == 1
    return data


def test_the_schema_check_can_fail() -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"schema": 1, "board": "x", "width": "512"}, _schema("kernels list"))


def test_boards_json() -> None:
    data = _validated("boards", ["boards", "--json"])
    assert {b["name"] for b in data["boards"]} >= {"qemu-q35", "epyc9654"}
    shown = _validated("boards show", ["boards", "show", "epyc9654", "--json"])
    assert shown["cpu"]["cores"] == load_board("epyc9654").cores


def test_boards_show_prints_toml() -> None:
    import tomllib

    result = CliRunner().invoke(main, ["boards", "show", "qemu-q35"])
    assert result.exit_code == 0
    assert tomllib.loads(result.stdout)["cpu"]["cores"] == load_board("qemu-q35").cores


@pytest.mark.parametrize("board", ["qemu-q35", "epyc9654"])
@pytest.mark.slow
def test_kernels_list_for_both_boards(board: str) -> None:
    data = _validated("kernels list", ["kernels", "list", "--board", board, "--json"])
    assert [k["name"] for k in data["kernels"]] == list(KERNEL_SYMBOLS)
    assert data["width"] == load_board(board).vector_bits
    table = CliRunner().invoke(main, ["kernels", "list", "--board", board])
    assert table.exit_code == 0 and all(name in table.stdout for name in KERNEL_SYMBOLS)


def test_fetch_list_json() -> None:
    data = _validated("fetch", ["fetch", "--json"])
    assert any(a["name"] == "smollm2-135m" for a in data["artifacts"])


def test_generate_json() -> None:
    model = load_board("qemu-q35").default_model
    data = _validated("generate", ["generate", "-m", str(model), "-p", "Hello", "-n", "4", "--json"])
    assert isinstance(data["tok_per_s"], float) and len(data["ids"]) <= 4


@pytest.mark.slow
def test_build_and_inspect_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DTE_BUILD_DIR", str(tmp_path / "build"))
    image = tmp_path / "b.img"
    built = _validated("build", ["build", "--board", "qemu-q35", "-o", str(image), "--json"])
    assert built["image"]["size"] == image.stat().st_size
    seen = _validated("inspect", ["inspect", str(image), "--json"])
    assert seen["efi"]["sha256"] == built["firmware"]["sha256"]
    shown = CliRunner().invoke(main, ["inspect", str(image)])
    assert shown.exit_code == 0 and "partitions" in shown.stdout      # tables go to stdout: `dte inspect | less`


def test_flash_verify_and_list_devices_json(tmp_path: Path) -> None:
    from flash_helpers import make_image

    image, out = tmp_path / "dte.img", tmp_path / "out.img"
    make_image(image)
    flashed = _validated("flash", ["flash", "-y", "--to-file", "--json", str(image), str(out)])
    assert flashed["verified"] is True and flashed["image_size"] == image.stat().st_size
    checked = _validated("verify", ["verify", "--json", str(image), str(out)])
    assert checked["status"] == "ok"
    drives = _validated("flash", ["flash", "--list-devices", "--json"])
    assert isinstance(drives["drives"], list)


def test_run_json_shape_and_numbers() -> None:
    """`dte run --json` from a console (status lines as docs/design.md writes them): valid against run.json, decimal
    values as numbers, hex, lists, hashes and quoted text as strings."""
    from dte_build.qemu import _result

    console = ["dte: banner build=0123456789012345 board=qemu-q35 version=0.1.0 platform=qemu",
               "dte: cpu vendor=AuthenticAMD family=15 model=107 sse42=1 avx2=1",
               "dte: xsave xcr0=0x7 supported=0x21f",
               "dte: prompt ids=1,362,473",
               "dte: tokens ids=297,2921",
               'dte: text text="42"',
               "dte: generate prompt_tokens=3 tokens=2 tok_per_s=5.22 prompt_tok_per_s=9.07",
               "dte: first_token ms=1807 platform_ms=5102",
               "dte: exit status=ok"]
    result = _result(33, False, False, 12.3456, "tcg", console)
    data = {"schema": 1, "image": "x.img", "model": None, **result.to_dict()}
    jsonschema.validate(data, _schema("run"))
    assert data["status"]["cpu"]["family"] == 15 and data["status"]["generate"]["tok_per_s"] == 5.22
    assert data["status"]["xsave"]["xcr0"] == "0x7" and data["status"]["tokens"]["ids"] == "297,2921"
    assert data["status"]["banner"]["build"] == "0123456789012345" and data["status"]["text"]["text"] == "42"
    assert data["ids"] == [297, 2921] and data["text"] == "42" and data["seconds"] == 12.346


@pytest.mark.slow
def test_remote_json_against_the_hosted_server(tmp_path: Path) -> None:
    """remote ping/stats/attest --json, against the hosted protocol server (firmware/net + a fake engine)."""
    from net_helpers import KEY, Server

    server = Server(delay_us=0)
    try:
        key = tmp_path / "k"
        key.write_text(KEY.hex() + "\n")
        key.chmod(0o600)
        endpoint = ["127.0.0.1:%d" % server.port, "--key", str(key), "--json"]
        ping = _validated("remote ping", ["remote", "ping", *endpoint, "--count", "2"])
        assert len(ping["rtt_ms"]) == 2
        stats = _validated("remote stats", ["remote", "stats", *endpoint])
        assert stats["served"] >= 2
        attest = _validated("remote attest", ["remote", "attest", *endpoint, "--nonce", "00ff"])
        assert attest["nonce"] == "00ff"
    finally:
        server.stop()
