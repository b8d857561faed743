"""Build the driver sources plus the device models into one hosted shared library for ctypes tests.

The driver files are compiled exactly as written for the firmware (freestanding C over MMIO pointers) with
dte_build.toolchain.compile_hosted_library; the platform interface comes from the test shim here, which also
captures dte_log lines for the tests to read.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from dte_build.paths import FIRMWARE_DIR, build_root
from dte_build.toolchain import compile_hosted_library

DEVMODELS = Path(__file__).resolve().parent
FIRMWARE_SOURCES = [
    "drivers/drvlog.c", "drivers/nvme.c", "drivers/nvme_queue.c", "drivers/nvme_read.c",
    "drivers/nvme_select.c", "drivers/storage.c",
    "drivers/pci.c", "drivers/acpi.c", "lib/crc32c.c", "lib/cstr.c", "lib/fmt.c",
    "drivers/thermal.c", "drivers/thermal_amd.c", "drivers/thermal_intel.c", "drivers/thermal_governor.c",
]
MODEL_SOURCES = [DEVMODELS / "nvme_model.c", DEVMODELS / "platform_shim.c", DEVMODELS / "violation_log.c"]


def find_clang() -> str | None:
    """The compiler the hosted build would use, or None (tests then skip)."""
    return shutil.which("clang-19") or shutil.which("clang")


def driver_library() -> Path:
    """Compile (cached by source hash) and return the path of the hosted test library."""
    sources = [p for p in (FIRMWARE_DIR / s for s in FIRMWARE_SOURCES) if p.exists()] + MODEL_SOURCES
    headers = sorted((FIRMWARE_DIR / "drivers").glob("*.h")) + sorted((FIRMWARE_DIR / "lib").glob("*.h")) + \
        sorted(DEVMODELS.glob("*.h")) + [FIRMWARE_DIR / "runtime" / "platform.h"]
    digest = hashlib.sha256()
    for path in sources + headers:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    out = build_root() / "tests" / f"libdte_drivers_{digest.hexdigest()[:16]}.so"
    if not out.exists():
        compile_hosted_library(sources, out, ["-g"])
    return out
