"""Where dte's source tree lives (firmware, boards, models) and where builds go."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = REPO_ROOT / "firmware"
LINKER_DIR = REPO_ROOT / "linker"
BOARDS_DIR = REPO_ROOT / "boards"
MODELS_DIR = REPO_ROOT / "models"
PERSONAS_DIR = REPO_ROOT / "personas"


def build_root() -> Path:
    """Build artifacts go here (never into the source tree); `DTE_BUILD_DIR` overrides."""
    return Path(os.environ.get("DTE_BUILD_DIR", REPO_ROOT / "build"))
