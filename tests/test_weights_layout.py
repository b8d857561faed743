"""Issue 13: `dte build --weights-layout rows4` writes the weights partition in the kernels' layout, and nothing is
lost: `dte inspect --extract-gguf` gives back the input file byte for byte (the input is the reference), the
laid-out tensor bytes equal a numpy re-layout written here from docs/kernels.md "Weight layouts" (tensor offsets,
shapes and types read by gguf-py, an independent GGUF reader), and a flipped byte on disk is named by its chunk."""

from __future__ import annotations

import filecmp
import hashlib
import json
from pathlib import Path

import crc32c
import gguf
import numpy as np
import pytest
from click.testing import CliRunner
from model_factory import ModelSpec, make_model

from dte_build.board import load_board
from dte_build.cli import main
from dte_build.image.builder import build_image
from dte_build.inspect import inspect_image

MIB = 1 << 20
T = gguf.GGMLQuantizationType
# docs/kernels.md: the fields of each ggml block (offset, size), from ggml-common.h's block_q* structs.
FIELDS = {T.Q4_0: [(0, 2), (2, 16)], T.Q4_1: [(0, 2), (2, 2), (4, 16)], T.Q5_0: [(0, 2), (2, 4), (6, 16)],
          T.Q5_1: [(0, 2), (2, 2), (4, 4), (8, 16)], T.Q8_0: [(0, 2), (2, 32)]}


def rows4_numpy(data: bytes, n_rows: int, block_bytes: int, fields: list[tuple[int, int]]) -> bytes:
    """docs/kernels.md ROWS4: groups of 4 rows; inside a group, block b of the 4 rows side by side, field by field
    (field f of row r at 4 * o_f + r * s_f of the group-block); the n_rows % 4 last rows stay as they are."""
    row_bytes = len(data) // n_rows
    nb = row_bytes // block_bytes
    full = n_rows - n_rows % 4
    blocks = np.frombuffer(data, np.uint8)[:full * row_bytes].reshape(full // 4, 4, nb, block_bytes)
    parts = [blocks[..., o:o + s].transpose(0, 2, 1, 3).reshape(full // 4, nb, 4 * s) for o, s in fields]
    return np.concatenate(parts, axis=2).tobytes() + data[full * row_bytes:]


def _efi(d: Path) -> Path:
    efi = d / "BOOTX64.EFI"
    efi.write_bytes(b"MZ" + bytes(range(256)) * 40)
    return efi


def _build(d: Path, model: Path, name: str, layout: str = "rows4") -> Path:
    return build_image(load_board("qemu-q35"), _efi(d), d / name, model_path=model, build_id="0123456789abcdef",
                       weights_layout=layout).path


def _partition(image: Path, size: int) -> bytes:
    with open(image, "rb") as f:
        f.seek(load_board("qemu-q35").weights_offset)
        return f.read(size)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Q8_0 llama whose 67-row embedding leaves 3 rows past the last group of 4."""
    return make_model(tmp_path_factory.mktemp("rows4") / "tiny-q8_0.gguf", ModelSpec(wtype=T.Q8_0))


def _check_laid_out(model: Path, image: Path) -> int:
    """Every laid-out tensor's bytes on disk equal the numpy re-layout; the rest equal the file. Returns how many
    tensors were laid out."""
    original = model.read_bytes()
    disk = _partition(image, len(original))
    reader = gguf.GGUFReader(model)
    expected = bytearray(original)
    laid = 0
    for t in reader.tensors:
        if t.tensor_type not in FIELDS or len(t.shape) != 2 or int(t.shape[1]) < 4:
            continue
        start, n = int(t.data_offset), int(t.n_bytes)
        block_bytes = gguf.GGML_QUANT_SIZES[t.tensor_type][1]
        expected[start:start + n] = rows4_numpy(original[start:start + n], int(t.shape[1]), block_bytes,
                                                FIELDS[t.tensor_type])
        assert disk[start:start + n] != original[start:start + n], t.name
        laid += 1
    assert disk == bytes(expected)
    return laid


def test_tiny_rows4_bytes_and_round_trip(tiny: Path, tmp_path: Path) -> None:
    image = _build(tmp_path, tiny, "tiny.img")
    assert _check_laid_out(tiny, image) >= 8
    report = inspect_image(image)
    assert report["problems"] == [] and report["model"]["layout"] == "rows4" and report["model"]["runs"]
    model = report["manifest"]["model"]
    assert model["layout"] == "rows4" and model["sha256"] == hashlib.sha256(tiny.read_bytes()).hexdigest()
    disk = _partition(image, model["size"])  # the CRC32C list is of the bytes on disk, not of the GGUF
    assert model["crc32c"] == [crc32c.crc32c(disk[i:i + MIB]) for i in range(0, len(disk), MIB)]
    out = tmp_path / "back.gguf"
    result = CliRunner().invoke(main, ["inspect", str(image), "--extract-gguf", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["extracted"]["sha256"] == model["sha256"]
    assert filecmp.cmp(tiny, out, shallow=False)


def test_gguf_layout_is_the_file(tiny: Path, tmp_path: Path) -> None:
    image = _build(tmp_path, tiny, "plain.img", layout="gguf")
    assert _partition(image, tiny.stat().st_size) == tiny.read_bytes()
    assert inspect_image(image)["manifest"]["model"]["layout"] == "gguf"


@pytest.mark.slow
def test_smollm2_rows4_round_trip(smollm2_path: Path, tmp_path: Path) -> None:
    """SmolLM2 ships Q4_1 (and Q8_0): laid out on disk, extracted byte-identical."""
    image = _build(tmp_path, smollm2_path, "smol.img")
    assert _check_laid_out(smollm2_path, image) > 100
    out = tmp_path / "smol.gguf"
    result = CliRunner().invoke(main, ["inspect", str(image), "--extract-gguf", str(out)])
    assert result.exit_code == 0, result.output
    assert filecmp.cmp(smollm2_path, out, shallow=False)


def test_flipped_byte_in_a_laid_out_chunk(tiny: Path, tmp_path: Path) -> None:
    """A byte flipped inside a laid-out tensor: `dte inspect` names its chunk, extraction refuses."""
    image = _build(tmp_path, tiny, "flip.img")
    reader = gguf.GGUFReader(tiny)
    t = next(t for t in reader.tensors if t.tensor_type == T.Q8_0 and len(t.shape) == 2)
    at = int(t.data_offset) + int(t.n_bytes) // 2
    raw = bytearray(image.read_bytes())
    raw[load_board("qemu-q35").weights_offset + at] ^= 0x10
    image.write_bytes(bytes(raw))
    problems = inspect_image(image)["problems"]
    assert any(f"weights chunk {at // MIB} " in p and "CRC32C" in p for p in problems), problems
    result = CliRunner().invoke(main, ["inspect", str(image), "--extract-gguf", str(tmp_path / "x.gguf")])
    assert result.exit_code == 1 and "SHA-256" in result.output and not (tmp_path / "x.gguf").exists()


def test_rows4_reproducible(tiny: Path, tmp_path: Path) -> None:
    assert _build(tmp_path, tiny, "a.img").read_bytes() == _build(tmp_path, tiny, "b.img").read_bytes()


def test_flash_plan_writes_the_same_laid_out_image(tiny: Path, tmp_path: Path) -> None:
    """`dte flash --board --model` (a plan, no image file): the same rows4 bytes as `dte build`'s image."""
    from dte_build.flash import flash, plan_source
    from dte_build.image.plan import plan_image

    built = _build(tmp_path, tiny, "built.img")
    out = tmp_path / "flashed.img"
    with plan_image(load_board("qemu-q35"), tmp_path / "BOOTX64.EFI", model_path=tiny,
                    build_id="0123456789abcdef") as plan:
        assert flash(plan_source(plan), out).verified is True
    assert out.read_bytes() == built.read_bytes()
    assert _check_laid_out(tiny, out) >= 8


@pytest.mark.qemu
def test_both_layouts_boot_to_the_same_ids(tmp_path: Path) -> None:
    """The firmware reads the layout from WEIGHTS.MAN: a gguf image (the engine repacks at open) and a rows4 image
    (read as laid out) of the same Q4_0 model generate the same ids, and both re-hash to the GGUF's SHA-256."""
    from dte_build.paths import MODELS_DIR

    model = MODELS_DIR / "dte-tiny-q4_0.gguf"
    runs = {}
    for layout in ("gguf", "rows4"):
        image = tmp_path / f"{layout}.img"
        built = CliRunner().invoke(main, ["build", "--board", "qemu-q35", "--model", str(model), "-n", "6", "-o",
                                          str(image), "--weights-layout", layout])
        assert built.exit_code == 0, built.output
        run = CliRunner().invoke(main, ["run", str(image), "--json", "--quiet", "--timeout", "300"])
        assert run.exit_code == 0, run.output
        runs[layout] = json.loads(run.stdout)["status"]
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    for status in runs.values():
        assert status["attest_weights"] == {"sha256": sha, "match": 1}
    assert runs["gguf"]["tokens"]["ids"] == runs["rows4"]["tokens"]["ids"] != ""
