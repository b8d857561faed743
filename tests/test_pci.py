"""PCI enumeration (firmware/drivers/pci.c), ACPI table lookup (acpi.c) and NVMe controller selection
(nvme_select.c), against configuration spaces built here from the PCI header layouts (PCI 3.0 section 6.1,
PCI-PCI bridge 1.2 section 3.2, BAR sizing section 6.2.5.1) and ACPI tables built from ACPI 6.5 section 5.2."""

from __future__ import annotations

import ctypes as C
import struct
import uuid
from collections.abc import Iterator

import numpy as np
import pytest

from devmodels import bindings as B
from devmodels.hosted import find_clang
from devmodels.pci_space import IO, MEM32, MEM64, MEM64_PF, ConfigSpace, Function

pytestmark = pytest.mark.skipif(find_clang() is None, reason="clang-19 is needed to build the hosted library")


def topology() -> dict[tuple[int, int, int], Function]:
    return {
        (0, 0, 0): Function(0x8086, 0x29C0, (0x06, 0x00, 0x00)),                       # host bridge
        (0, 1, 0): Function(0x8086, 0x10D3, (0x02, 0x00, 0x00), multi=True,
                            bars=((0, MEM32, 128 << 10, 0xFEBC0000), (2, IO, 32, 0xC000))),
        (0, 1, 2): Function(0x1B36, 0x000D, (0x0C, 0x03, 0x30), bars=((0, MEM64, 16 << 10, 0xFE000000),)),
        (0, 2, 0): Function(0x1B36, 0x000C, (0x06, 0x04, 0x00), header=1, secondary=1, subordinate=2),
        (0, 3, 0): Function(0x1AF4, 0x1000, (0x02, 0x00, 0x00), bars=((0, IO, 64, 0xC040),)),
        (0, 3, 1): Function(0xDEAD, 0xBEEF, (0xFF, 0x00, 0x00)),  # not multi-function: must stay unseen
        (1, 0, 0): Function(0x1B36, 0x000C, (0x06, 0x04, 0x00), header=1, secondary=2, subordinate=2),
        (1, 5, 0): Function(0x144D, 0xA824, (0x01, 0x08, 0x02),
                            bars=((0, MEM64, 32 << 10, 0x3800_0000_0000),)),
        (2, 0, 0): Function(0x1B36, 0x0010, (0x01, 0x08, 0x02),
                            bars=((0, MEM64, 16 << 10, 0xFE800000), (2, MEM64_PF, 1 << 30, 0x80_0000_0000))),
        (5, 0, 0): Function(0x1234, 0x5678, (0x01, 0x08, 0x02)),  # behind no bridge: not reachable
    }


@pytest.fixture
def space() -> Iterator[ConfigSpace]:
    cs = ConfigSpace(topology())
    cs.install()
    yield cs


def found(lib: C.CDLL) -> dict[tuple[int, int, int], B.PciDevice]:
    return {(d.bus, d.dev, d.fn): d for d in (lib.pci_device_at(i).contents for i in range(lib.pci_device_count()))}


def test_walk_follows_bridges_and_multifunction(space: ConfigSpace) -> None:
    lib = B.lib()
    assert lib.pci_enumerate() == 8
    devs = found(lib)
    assert set(devs) == {(0, 0, 0), (0, 1, 0), (0, 1, 2), (0, 2, 0), (0, 3, 0), (1, 0, 0), (1, 5, 0), (2, 0, 0)}
    assert (devs[(0, 2, 0)].header_type, devs[(0, 2, 0)].secondary_bus, devs[(0, 2, 0)].subordinate_bus) == (1, 1, 2)
    nv = devs[(2, 0, 0)]
    assert (nv.vendor_id, nv.device_id, nv.class_code, nv.subclass, nv.prog_if) == (0x1B36, 0x0010, 1, 8, 2)


def test_bar_decoding_and_sizing(space: ConfigSpace) -> None:
    lib = B.lib()
    before = {k: bytes(f.regs[:64]) for k, f in space.functions.items()}
    lib.pci_enumerate()
    devs = found(lib)

    def bar(addr: tuple[int, int, int], i: int) -> tuple[int, int, bool, bool, bool]:
        b = devs[addr].bars[i]
        return b.base, b.size, b.is_io, b.is_64, b.prefetchable

    assert bar((0, 1, 0), 0) == (0xFEBC0000, 128 << 10, False, False, False)
    assert bar((0, 1, 0), 2) == (0xC000, 32, True, False, False)
    assert bar((0, 1, 0), 1)[1] == 0                                   # unimplemented BAR reads back 0
    assert bar((0, 1, 2), 0) == (0xFE000000, 16 << 10, False, True, False)
    assert bar((1, 5, 0), 0) == (0x3800_0000_0000, 32 << 10, False, True, False)
    assert bar((2, 0, 0), 2) == (0x80_0000_0000, 1 << 30, False, True, True)
    assert bar((2, 0, 0), 1)[1] == 0 and bar((2, 0, 0), 3)[1] == 0      # upper halves of 64-bit BARs
    assert bar((0, 3, 0), 0) == (0xC040, 64, True, False, False)
    # Sizing restored every BAR and command register, and never left decode on while a BAR held all-ones.
    assert {k: bytes(f.regs[:64]) for k, f in space.functions.items()} == before
    assert not any(f.decode_on_while_sizing for f in space.functions.values())


def test_find_and_enable(space: ConfigSpace) -> None:
    lib = B.lib()
    lib.pci_enumerate()
    nvme = [lib.pci_find_class(1, 8, 2, n) for n in range(3)]
    got = {(p.contents.bus, p.contents.dev) for p in nvme[:2]}
    assert got == {(1, 5), (2, 0)} and not nvme[2]
    assert lib.pci_find_class(0x0C, 0x03, 0xFF, 0).contents.prog_if == 0x30
    assert lib.pci_find_id(0x144D, 0xA824, 0).contents.bus == 1
    assert not lib.pci_find_id(0x1234, 0x5678, 0)
    dev = lib.pci_find_address(2, 0, 0)
    lib.pci_enable(dev)
    assert space.functions[(2, 0, 0)].read32(4) & 0x6 == 0x6           # memory space + bus master
    lib.pci_log_devices()
    assert "dte: pci dev=02:00.0 id=1b36:0010 class=01.08.02" in B.take_log()


def test_ecam_addressing_with_mcfg_base_for_bus_zero() -> None:
    """ECAM: register r of b:d.f at base + (b << 20 | d << 15 | f << 12 | r); MCFG's base is bus 0's address."""
    lib = B.lib()
    funcs = topology()
    first_bus = 0
    mem = np.zeros(3 << 20, dtype=np.uint8)  # buses 0..2
    for (bus, dev, fn), f in funcs.items():
        if bus <= 2:
            off = ((bus - first_bus) << 20) | (dev << 15) | (fn << 12)
            mem[off:off + 4096] = np.frombuffer(bytes(f.regs), dtype=np.uint8)
    mem.view(np.uint32)[::1024][mem.view(np.uint32)[::1024] == 0] = 0xFFFFFFFF  # absent functions read all-ones
    lib.pci_init_ecam(mem.ctypes.data, 0, 2)
    assert lib.pci_enumerate() == 8
    assert lib.pci_find_address(1, 5, 0).contents.device_id == 0xA824
    assert lib.pci_config_read32(2, 0, 0, 8) >> 8 == 0x010802


def test_ecam_segment_starting_at_bus_one() -> None:
    lib = B.lib()
    mem = np.full(1 << 20, 0xFF, dtype=np.uint8)  # bus 1 only
    f = Function(0x1B36, 0x0010, (0x01, 0x08, 0x02))
    off = (4 << 15) | (0 << 12)
    mem[off:off + 4096] = np.frombuffer(bytes(f.regs), dtype=np.uint8)
    lib.pci_init_ecam(mem.ctypes.data - (1 << 20), 1, 1)  # MCFG base = where bus 0 would be
    assert lib.pci_enumerate() == 1
    assert lib.pci_find_address(1, 4, 0).contents.vendor_id == 0x1B36
    assert lib.pci_config_read32(0, 0, 0, 0) == 0xFFFFFFFF              # outside the decoded bus range


# --- ACPI ------------------------------------------------------------------------------------------------------

def _fix_checksum(buf: np.ndarray, start: int, length: int, at: int) -> None:
    buf[at] = 0
    buf[at] = (-int(buf[start:start + length].sum())) & 0xFF


def _sdt(buf: np.ndarray, off: int, sig: bytes, body: bytes) -> int:
    length = 36 + len(body)
    header = sig + struct.pack("<IBB6s8sI4sI", length, 1, 0, b"DTEOEM", b"DTETABLE", 1, b"DTE ", 1)
    buf[off:off + length] = np.frombuffer(header + body, dtype=np.uint8)
    _fix_checksum(buf, off, length, off + 9)
    return off


def low_page() -> np.ndarray:
    """One zeroed page below 4 GiB (mmap MAP_32BIT), for the RSDT's 32-bit table pointers."""
    libc = C.CDLL(None, use_errno=True)
    libc.mmap.restype, libc.mmap.argtypes = C.c_void_p, [C.c_void_p, C.c_size_t, C.c_int, C.c_int, C.c_int,
                                                          C.c_long]
    prot_rw, map_private_anon_32bit = 0x3, 0x02 | 0x20 | 0x40
    addr = libc.mmap(None, 4096, prot_rw, map_private_anon_32bit, -1, 0)
    if addr in (None, C.c_void_p(-1).value):
        pytest.skip("mmap(MAP_32BIT) failed: no page below 4 GiB for the RSDT test")
    return np.ctypeslib.as_array((C.c_uint8 * 4096).from_address(addr))


def acpi_image(revision: int = 2) -> tuple[np.ndarray, int, int]:
    """RSDP -> XSDT (or RSDT) -> {APIC, MCFG}; returns (memory, rsdp address, mcfg address)."""
    buf = np.zeros(4096, dtype=np.uint8) if revision >= 2 else low_page()
    base = buf.ctypes.data
    _sdt(buf, 1024, b"APIC", b"\0" * 8)
    mcfg_body = b"\0" * 8 + struct.pack("<QHBBI", 0xB0000000, 0, 0, 0xFF, 0) + struct.pack("<QHBBI", 0xC0000000,
                                                                                             1, 0x10, 0x1F, 0)
    _sdt(buf, 2048, b"MCFG", mcfg_body)
    if revision >= 2:
        _sdt(buf, 512, b"XSDT", struct.pack("<QQ", base + 1024, base + 2048))
        rsdp = b"RSD PTR " + struct.pack("<B6sBI", 0, b"DTEOEM", 2, 0) + struct.pack("<IQB3s", 36, base + 512, 0,
                                                                                      b"\0" * 3)
    else:
        _sdt(buf, 512, b"RSDT", struct.pack("<II", base + 1024, base + 2048))
        rsdp = b"RSD PTR " + struct.pack("<B6sBI", 0, b"DTEOEM", 0, base + 512)
    buf[0:len(rsdp)] = np.frombuffer(rsdp, dtype=np.uint8)
    _fix_checksum(buf, 0, 20, 8)
    if revision >= 2:
        _fix_checksum(buf, 0, 36, 32)
    return buf, base, base + 2048


def test_acpi_finds_mcfg_through_xsdt_and_decodes_entries() -> None:
    lib = B.lib()
    buf, rsdp, mcfg = acpi_image()
    assert lib.acpi_find_table(rsdp, b"MCFG") == mcfg
    assert lib.acpi_find_table(rsdp, b"APIC") == rsdp + 1024
    assert lib.acpi_find_table(rsdp, b"SSDT") is None
    e = B.AcpiMcfgEntry()
    assert lib.acpi_mcfg_entry(mcfg, 0, C.byref(e)) == 1
    assert (e.base, e.segment, e.bus_start, e.bus_end) == (0xB0000000, 0, 0, 0xFF)
    assert lib.acpi_mcfg_entry(mcfg, 1, C.byref(e)) == 1
    assert (e.base, e.segment, e.bus_start, e.bus_end) == (0xC0000000, 1, 0x10, 0x1F)
    assert lib.acpi_mcfg_entry(mcfg, 2, C.byref(e)) == 0


def test_acpi_rejects_bad_checksums() -> None:
    lib = B.lib()
    buf, rsdp, mcfg = acpi_image()
    buf[2048 + 40] ^= 1                                  # corrupt MCFG
    assert lib.acpi_find_table(rsdp, b"MCFG") is None
    assert lib.acpi_find_table(rsdp, b"APIC") == rsdp + 1024
    buf[3] ^= 1                                          # corrupt the RSDP signature
    assert lib.acpi_find_table(rsdp, b"APIC") is None


def test_acpi_revision_0_uses_rsdt() -> None:
    lib = B.lib()
    buf, rsdp, mcfg = acpi_image(revision=0)
    assert lib.acpi_find_table(rsdp, b"MCFG") == mcfg


def test_rsdp_from_uefi_configuration_table_prefers_acpi_20() -> None:
    lib = B.lib()
    # UEFI 2.10 section 4.6: EFI_CONFIGURATION_TABLE = {EFI_GUID VendorGuid; VOID *VendorTable}; GUID bytes are the
    # mixed-endian form uuid.bytes_le gives. GUIDs from UEFI 2.10 section 4.6.1.1.
    acpi10 = uuid.UUID("eb9d2d30-2d88-11d3-9a16-0090273fc14d")
    acpi20 = uuid.UUID("8868e871-e4f1-11d3-bc22-0080c73c8881")
    smbios = uuid.UUID("eb9d2d31-2d88-11d3-9a16-0090273fc14d")

    def table(entries: list[tuple[uuid.UUID, int]]) -> bytes:
        return b"".join(g.bytes_le + struct.pack("<Q", p) for g, p in entries)

    both = C.create_string_buffer(table([(smbios, 0x1000), (acpi10, 0x2000), (acpi20, 0x3000)]))
    assert lib.acpi_rsdp_from_uefi(both, 3) == 0x3000
    only_v1 = C.create_string_buffer(table([(acpi10, 0x2000), (smbios, 0x1000)]))
    assert lib.acpi_rsdp_from_uefi(only_v1, 2) == 0x2000
    assert lib.acpi_rsdp_from_uefi(only_v1, 0) is None
