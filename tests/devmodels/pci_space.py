"""A PCI configuration space in Python for the hosted PCI tests: functions with 4 KiB config spaces whose BARs
follow the sizing rules of PCI 3.0 section 6.2.5.1, served to pci.c through pci_init_custom callbacks."""

from __future__ import annotations

import struct

from . import bindings as B

MEM32, MEM64, MEM64_PF, IO = "mem32", "mem64", "mem64pf", "io"


class Function:
    """One function's 4 KiB configuration space with BAR sizing semantics."""

    def __init__(self, vid: int, did: int, cls: tuple[int, int, int], *, header: int = 0, multi: bool = False,
                 bars: tuple[tuple[int, str, int, int], ...] = (), secondary: int = 0, subordinate: int = 0) -> None:
        self.regs = bytearray(4096)
        struct.pack_into("<HH", self.regs, 0, vid, did)
        struct.pack_into("<BBBB", self.regs, 8, 1, cls[2], cls[1], cls[0])  # revision, prog-if, subclass, class
        self.regs[0x0E] = header | (0x80 if multi else 0)
        if header == 1:
            self.regs[0x18:0x1B] = bytes([0, secondary, subordinate])
        self.bar_masks: dict[int, tuple[int, int]] = {}  # offset -> (writable bits, read-only bits)
        for index, kind, size, base in bars:
            off = 0x10 + 4 * index
            if kind == IO:
                self.bar_masks[off] = (~(size - 1) & 0xFFFFFFFC, 0x1)
                struct.pack_into("<I", self.regs, off, base | 1)
                continue
            ro = {MEM32: 0x0, MEM64: 0x4, MEM64_PF: 0xC}[kind]
            self.bar_masks[off] = (~(size - 1) & 0xFFFFFFF0, ro)
            struct.pack_into("<I", self.regs, off, (base & 0xFFFFFFF0) | ro)
            if kind != MEM32:
                self.bar_masks[off + 4] = (~((size - 1) >> 32) & 0xFFFFFFFF, 0)
                struct.pack_into("<I", self.regs, off + 4, base >> 32)
        self.decode_on_while_sizing = False

    def read32(self, off: int) -> int:
        return struct.unpack_from("<I", self.regs, off)[0]

    def write32(self, off: int, value: int) -> None:
        if off in self.bar_masks:
            rw, ro = self.bar_masks[off]
            if value == 0xFFFFFFFF and self.read32(4) & 0x3:
                self.decode_on_while_sizing = True
            struct.pack_into("<I", self.regs, off, (value & rw) | ro)
        elif off == 4:
            struct.pack_into("<H", self.regs, 4, value & 0xFFFF)


class ConfigSpace:
    def __init__(self, functions: dict[tuple[int, int, int], Function]) -> None:
        self.functions = functions
        self._read = B.PCI_READ32(self._read32)
        self._write = B.PCI_WRITE32(self._write32)

    def _read32(self, _ctx: int, bus: int, dev: int, fn: int, off: int) -> int:
        f = self.functions.get((bus, dev, fn))
        return f.read32(off) if f else 0xFFFFFFFF

    def _write32(self, _ctx: int, bus: int, dev: int, fn: int, off: int, value: int) -> None:
        f = self.functions.get((bus, dev, fn))
        if f:
            f.write32(off, value)

    def install(self) -> None:
        B.lib().pci_init_custom(self._read, self._write, None, 0, 255)
