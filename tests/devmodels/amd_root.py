"""An AMD root complex (PCI 00:00.0, vendor 1022h) with the SMN index/data pair at config offsets 60h/64h, as
Linux's amd_nb.c drives it: a write of an SMN address to 60h selects the register, a read of 64h returns it. The
SMN register file holds recorded values; every access is logged so tests can check the driver's order."""

from __future__ import annotations

import struct

from .pci_space import Function

SMN_INDEX, SMN_DATA = 0x60, 0x64


class AmdRootComplex(Function):
    def __init__(self, smn: dict[int, int], device_id: int = 0x14A4) -> None:
        super().__init__(0x1022, device_id, (0x06, 0x00, 0x00))
        self.smn = dict(smn)
        self.index: int | None = None
        self.accesses: list[tuple[str, int]] = []
        self.violations: list[str] = []

    def write32(self, off: int, value: int) -> None:
        if off == SMN_INDEX:
            self.index = value
            self.accesses.append(("index", value))
            return
        super().write32(off, value)

    def read32(self, off: int) -> int:
        if off == SMN_DATA:
            if self.index is None:
                self.violations.append("SMN data read before any index write")
                return 0xFFFFFFFF
            self.accesses.append(("data", self.index))
            return self.smn.get(self.index, 0)
        return struct.unpack_from("<I", self.regs, off)[0]
