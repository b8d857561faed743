"""The NVMe driver against QEMU's own NVMe controller: a test-only UEFI app (tests/qemu/nvme_probe.c) finds the
RSDP, MCFG/ECAM, the controller, loads a payload and checks it against CRC32Cs written by the crc32c package, and
against the same bytes read through UEFI Block I/O (OVMF's NVMe driver), printing both throughputs."""

from __future__ import annotations

import struct
from pathlib import Path

import crc32c
import numpy as np
import pytest

from _efiprobe import build_probe_disk, need_qemu_tools
from dte_build import qemu
from dte_build.paths import FIRMWARE_DIR

pytestmark = pytest.mark.qemu

PROBE_DIR = Path(__file__).resolve().parent / "qemu"
SOURCES = [PROBE_DIR / "nvme_probe.c", PROBE_DIR / "probe_platform.c"] + [FIRMWARE_DIR / s for s in (
    "drivers/drvlog.c", "drivers/nvme.c", "drivers/nvme_queue.c", "drivers/nvme_read.c", "drivers/nvme_select.c",
    "drivers/pci.c", "drivers/acpi.c", "drivers/storage.c", "lib/crc32c.c", "lib/cstr.c", "lib/fmt.c", "lib/mem.c")]
CHUNK = 1 << 20


@pytest.fixture(scope="module")
def boot_disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need_qemu_tools()
    return build_probe_disk(SOURCES, tmp_path_factory.mktemp("probe"))


def data_disk(path: Path, offset: int, size: int, seed: int) -> np.ndarray:
    payload = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)
    crcs = [crc32c.crc32c(payload[i:i + CHUNK].tobytes()) for i in range(0, size, CHUNK)]
    header = b"DTEPROBE" + struct.pack("<QQII", offset, size, CHUNK, len(crcs)) + struct.pack(f"<{len(crcs)}I", *crcs)
    assert len(header) <= 8192
    with open(path, "wb") as f:
        f.truncate(((offset + size) | ((1 << 20) - 1)) + 1)
        f.write(header)
        f.seek(offset)
        f.write(payload.tobytes())
    return payload


def boot(boot_disk: Path, data: Path, device_opts: str) -> qemu.RunResult:
    config = qemu.QemuConfig(drive="ide", memory_mib=512, extra_args=(
        "-drive", f"if=none,id=nvd,file={data},format=raw",
        "-device", f"nvme,serial=dteprobe,drive=nvd{device_opts}"))
    return qemu.run_config(boot_disk, config, timeout=120)


@pytest.mark.parametrize("device_opts,offset", [
    ("", (1 << 20) + 3 * 512),                                                       # 512 B blocks
    (",logical_block_size=4096,physical_block_size=4096,mdts=2", (1 << 20) + 1536),  # 4 KiB, start mid-block
])
def test_qemu_nvme_load_verifies(boot_disk: Path, tmp_path: Path, device_opts: str, offset: int) -> None:
    data = tmp_path / "data.img"
    size = 6 * CHUNK + 4321
    data_disk(data, offset, size, seed=5)
    result = boot(boot_disk, data, device_opts)
    assert result.ok, result.console[-3000:]
    ready = result.status["nvme"]
    assert ready.get("serial") == "dteprobe"
    assert ready.get("block_bytes") == ("4096" if "4096" in device_opts else "512")
    assert result.status["pci"].get("access") == "ecam" or any(
        f.get("access") == "ecam" for f in result.all("pci")), result.console[-2000:]
    assert any(f.get("ok") is True and f.get("chunks") == "7" for f in result.all("verify")), result.console[-2000:]
    # The same bytes read first through OVMF's own NVMe driver (UEFI Block I/O) match ours byte for byte.
    assert result.status.get("bench", {}).get("same") == "1", result.console[-3000:]


def test_qemu_nvme_corruption_names_the_chunk(boot_disk: Path, tmp_path: Path) -> None:
    data = tmp_path / "data.img"
    offset, size = 1 << 20, 5 * CHUNK
    data_disk(data, offset, size, seed=6)
    with open(data, "r+b") as f:
        f.seek(offset + 3 * CHUNK + 99)
        byte = f.read(1)
        f.seek(offset + 3 * CHUNK + 99)
        f.write(bytes([byte[0] ^ 0x01]))
    result = boot(boot_disk, data, "")
    assert not result.ok
    assert "dte: verify error=crc32c chunk=3" in result.console
