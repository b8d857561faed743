"""Boot to tokens under QEMU (TCG): the firmware reads the GGUF from the weights LBA with our own NVMe driver after
ExitBootServices, checks every 1 MiB chunk's CRC32C, runs the engine on the build-time prompt and prints the ids.

Expected ids come from the hosted engine (`dte generate`, the same C engine built for Linux with pthreads and mmap,
docs/design.md) for the same model, prompt and sampling settings; the prompt ids are also checked against
llama.cpp's tokenizer (llama-cpp-python) when it is installed. Sampling is at temperature 1.5 without top-k/top-p,
so any difference in any logit shows up as different ids. Boots are kept short: the 5-chunk dte-tiny model and a
few tokens."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from boot_helpers import TIMEOUT, boot, build_boot_image, generated_like_host, hosted_generation
from dte_build import qemu
from dte_build.board import Board, load_board
from dte_build.cli import main
from dte_build.errors import DteError
from dte_build.paths import BOARDS_DIR, MODELS_DIR
from dte_build.toolchain import FirmwareOptions

pytestmark = pytest.mark.qemu


CHUNK = 1 << 20
PROMPT = "Hello. I am Deep Tree Echo,"
OPTIONS = FirmwareOptions(prompt=PROMPT, n_predict=6, temperature=1.5, top_k=0, top_p=1.0, seed=3)
Q8_0 = MODELS_DIR / "dte-tiny-q8_0.gguf"
Q4_K_M = MODELS_DIR / "dte-tiny-q4_k_m.gguf"


def _need(model: Path) -> Path:
    if not model.is_file():
        pytest.skip(f"{model.name} is not in models/")
    return model


def board_variant(tmp: Path, **edits: str) -> Board:
    """qemu-q35 with some `key = value` lines (or the weights region line) replaced."""
    text = (BOARDS_DIR / "qemu-q35.toml").read_text()
    for key, value in edits.items():
        if key == "weights_region":
            text, n = re.subn(r'\{ name = "weights",[^}]*\}', value, text)
        else:
            text, n = re.subn(rf"(?m)^{key}\s*=.*$", f"{key} = {value}", text)
        assert n == 1, key
    path = tmp / "board.toml"
    path.write_text(text)
    return load_board(path)


@pytest.fixture(scope="module", autouse=True)
def _shared_build_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """One firmware build directory for the module: objects that do not include dte_config.h are compiled once."""
    global _BUILD_DIR
    _BUILD_DIR = tmp_path_factory.mktemp("firmware")


_BUILD_DIR: Path | None = None


def build(tmp: Path, board: Board, model: Path | None, options: FirmwareOptions = OPTIONS,
          stream_weights: bool = False) -> Path:
    return build_boot_image(tmp, board, model, options, stream_weights=stream_weights, build_dir=_BUILD_DIR)


def assert_generated_like_host(result: qemu.RunResult, model: Path, options: FirmwareOptions = OPTIONS) -> dict:
    return generated_like_host(result, model, options)


def test_qemu_boots_to_the_hosted_engines_tokens_q8_0(tmp_path: Path) -> None:
    model = _need(Q8_0)
    board = load_board("qemu-q35")
    result = boot(build(tmp_path, board, model), board)
    summary = assert_generated_like_host(result, model)
    assert result.status["verify"] == {"ok": True, "chunks": str(-(-model.stat().st_size // CHUNK)),
                                       "ms": result.status["verify"]["ms"]}
    assert result.status["weights"]["streaming"] == "0"
    assert summary["tok_per_s"] > 0 and summary["prompt_tok_per_s"] > 0 and summary["load_mib_per_s"] > 0
    assert set(summary["boot_ms"]) >= {"platform", "firmware", "load", "verify", "prompt"}
    try:
        import llama_cpp  # noqa: PLC0415 - optional independent tokenizer
    except ImportError:
        return
    llm = llama_cpp.Llama(str(model), vocab_only=True, verbose=False)
    assert summary["prompt_ids"] == llm.tokenize(PROMPT.encode(), add_bos=True)


def test_qemu_boots_to_the_hosted_engines_tokens_k_quant(tmp_path: Path) -> None:
    model = _need(Q4_K_M)
    board = load_board("qemu-q35")
    assert_generated_like_host(boot(build(tmp_path, board, model), board), model)


def test_two_cores_read_with_one_queue_each_and_generate_the_same_ids(tmp_path: Path) -> None:
    model = _need(Q8_0)
    board = load_board("qemu-q35")
    options = dataclasses.replace(OPTIONS, n_predict=3)
    result = boot(build(tmp_path, board, model, options), board, smp=2)
    assert_generated_like_host(result, model, options)
    assert result.status["nvme"]["queues"] == "2" and result.status["load"]["queues"] == "2"


def test_corrupt_byte_is_refused_naming_the_chunk(tmp_path: Path) -> None:
    model = _need(Q8_0)
    board = load_board("qemu-q35")
    image = build(tmp_path, board, model)
    offset = board.weights_lba * board.sector_size + 2 * CHUNK + 12345
    with open(image, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x40]))
    result = boot(image, board)
    assert result.rc == qemu.RC_FAIL and not result.ok, result.console[-2000:]
    assert result.status["weights"]["status"] == "corrupt" and result.status["weights"]["chunk"] == "2"
    assert "dte: weights status=corrupt chunk=2" in result.console
    assert "tokens" not in result.status


def test_weights_at_an_lba_that_is_not_a_multiple_of_the_transfer_size(tmp_path: Path) -> None:
    """65 MiB is a 1 MiB boundary (what boards allow) but not a multiple of the 2 MiB transfers QEMU grants with
    mdts=9 (2^9 x 4 KiB, NVMe 2.0 Figure 275), so commands start mid-transfer-unit."""
    model = _need(Q8_0)
    board = board_variant(tmp_path, weights_lba=str(65 * 2048))
    result = boot(build(tmp_path, board, model), board, nvme_options="mdts=9")
    assert_generated_like_host(result, model)
    assert result.status["manifest"]["weights_lba"] == str(65 * 2048)
    assert int(result.status["nvme"]["max_transfer"]) == 2 << 20


def test_namespace_with_4k_logical_blocks(tmp_path: Path) -> None:
    """The image laid out for 4096-byte sectors (GPT, ESP and weights LBA in 4 KiB units) on a namespace formatted
    with 4 KiB LBAs. FAT32 needs 65525 clusters, so with 4 KiB sectors the ESP is 260 MiB (fatgen103 section 3.5)."""
    model = _need(Q8_0)
    board = board_variant(tmp_path, sector_size="4096", esp_mib="260", weights_lba=str(264 * 256))
    result = boot(build(tmp_path, board, model), board,
                  nvme_options="logical_block_size=4096,physical_block_size=4096")
    assert_generated_like_host(result, model)
    assert result.status["nvme"]["block_bytes"] == "4096"


def test_model_larger_than_the_weights_region_streams(tmp_path: Path) -> None:
    """A 2 MiB weights region for a larger model: two chunks stay resident, the rest is read per layer."""
    model = _need(Q8_0)
    board = board_variant(tmp_path, weights_region='{ name = "weights",  size_mib = 2, min_mib = 2 }')
    assert model.stat().st_size > 3 * CHUNK
    with pytest.raises(DteError, match="weights region holds 2 MiB"):
        build(tmp_path, board, model)
    result = boot(build(tmp_path, board, model, stream_weights=True), board)
    assert_generated_like_host(result, model)
    assert result.status["weights"]["streaming"] == "1"
    assert result.status["weights"]["resident_bytes"] == str(2 * CHUNK)
    assert int(result.status["stream"]["reads"]) > 0 and int(result.status["stream"]["bytes"]) > 0


def test_no_nvme_controller_fails_clearly(tmp_path: Path) -> None:
    model = _need(Q8_0)
    board = load_board("qemu-q35")
    result = boot(build(tmp_path, board, model), board, drive="ide")
    assert result.rc == qemu.RC_FAIL and not result.timed_out, result.console[-2000:]
    assert result.status["weights"]["status"] == "unreadable"
    assert result.status["weights"]["error"] == "no_nvme"
    assert result.seconds < 120


def test_image_without_a_model_is_refused(tmp_path: Path) -> None:
    board = load_board("qemu-q35")
    result = boot(build(tmp_path, board, None), board)
    assert result.rc == qemu.RC_FAIL, result.console[-2000:]
    assert result.status["weights"]["status"] == "missing"
    assert "--model" in result.status["weights"]["text"]


def test_dte_run_json_reports_the_generation(tmp_path: Path) -> None:
    model = _need(Q8_0)
    board = load_board("qemu-q35")
    options = dataclasses.replace(OPTIONS, n_predict=3, extra_defines={"DTE_BENCH_BLOCKIO": "1"})
    image = build(tmp_path, board, model, options)
    ran = CliRunner().invoke(main, ["run", str(image), "--json", "--quiet", "--timeout", str(TIMEOUT)])
    assert ran.exit_code == 0, ran.output
    out = json.loads(ran.stdout)
    expected = hosted_generation(model, options)
    assert out["ids"] == expected["ids"] and out["text"] == expected["text"]
    assert out["tok_per_s"] > 0 and out["load_mib_per_s"] > 0 and out["first_token_ms"] > 0
    bench = out["bench"]
    assert bench["blockio_bytes"] == bench["dte_bytes"] == model.stat().st_size
    assert bench["blockio_mib_per_s"] > 0 and bench["ratio"] > 0


def test_fault_during_inference_panics_naming_the_engine(tmp_path: Path) -> None:
    model = _need(Q8_0)
    board = load_board("qemu-q35")
    options = dataclasses.replace(OPTIONS, extra_defines={"DTE_TEST_ENGINE_FAULT": "1"})
    result = boot(build(tmp_path, board, model, options), board)
    assert result.rc == qemu.RC_PANIC and not result.timed_out, result.console[-2000:]
    panic = result.status["panic"]
    assert panic["vector"] == "13" and panic["subsystem"] == "engine"   # #GP, Intel SDM Vol. 3A section 6.15
    assert result.status["weights"]["status"] == "ok" and "tokens" not in result.status
