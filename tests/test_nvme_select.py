"""nvme_open_selected (firmware/drivers/nvme_select.c): PCI enumeration finds NVMe functions (class 01.08.02) whose
BAR0 is a simulated controller, and the board's storage.select picks one: first, by PCI address, by serial."""

from __future__ import annotations

import ctypes as C
from collections.abc import Iterator

import numpy as np
import pytest

from devmodels import bindings as B
from devmodels.hosted import find_clang
from devmodels.nvme_rig import Rig
from devmodels.pci_space import MEM32, MEM64, ConfigSpace, Function

pytestmark = pytest.mark.skipif(find_clang() is None, reason="clang-19 is needed to build the hosted library")

BAR_BYTES = 64 << 10  # nvme_model.c's register window


@pytest.fixture
def two_controllers() -> Iterator[tuple[Rig, Rig, ConfigSpace]]:
    a, b = Rig(serial=b"SN-AAAA", seed=2), Rig(serial=b"SN-BBBB", seed=3)
    bar_a = B.lib().nvme_model_bar(a.model)
    bar_b = B.lib().nvme_model_bar(b.model)
    space = ConfigSpace({
        (0, 0, 0): Function(0x8086, 0x29C0, (0x06, 0x00, 0x00)),
        (0, 1, 0): Function(0x8086, 0x2922, (0x01, 0x06, 0x01), bars=((5, MEM32, 4096, 0xFEB00000),)),  # AHCI
        (0, 3, 0): Function(0x1B36, 0x0010, (0x01, 0x08, 0x02), bars=((0, MEM64, BAR_BYTES, bar_a),)),
        (0, 4, 0): Function(0x1B36, 0x0010, (0x01, 0x08, 0x02), bars=((0, MEM64, BAR_BYTES, bar_b),)),
    })
    space.install()
    B.lib().pci_enumerate()
    B.take_log()
    try:
        yield a, b, space
    finally:
        a.close()
        b.close()


def open_selected(select: bytes) -> tuple[int, C.c_void_p]:
    ctrl = C.c_void_p()
    cfg = B.NvmeConfig(io_queues=1, queue_depth=16, command_timeout_ms=1000, nsid=0)
    return B.lib().nvme_open_selected(select, C.byref(cfg), C.byref(ctrl)), ctrl


def serial_of(ctrl: C.c_void_p) -> bytes:
    return bytes(B.lib().nvme_get_info(ctrl).contents.serial)


def test_first_controller(two_controllers: tuple[Rig, Rig, ConfigSpace]) -> None:
    a, _b, space = two_controllers
    rc, ctrl = open_selected(b"first")
    assert rc == B.NVME_OK, B.take_log()
    assert serial_of(ctrl) == b"SN-AAAA"
    assert space.functions[(0, 3, 0)].read32(4) & 0x6 == 0x6     # memory decode + bus master were enabled
    assert "dte: nvme controller=00:03.0 id=1b36:0010" in B.take_log()
    buf = np.zeros(8192, dtype=np.uint8)
    assert B.lib().nvme_read(ctrl, 1, 2, 8192, buf.ctypes.data) == B.NVME_OK
    assert np.array_equal(buf, a.expected(2, 8192))


def test_by_pci_address(two_controllers: tuple[Rig, Rig, ConfigSpace]) -> None:
    rc, ctrl = open_selected(b"pci:00:04.0")
    assert rc == B.NVME_OK
    assert serial_of(ctrl) == b"SN-BBBB"


def test_by_serial_skips_the_other_controller(two_controllers: tuple[Rig, Rig, ConfigSpace]) -> None:
    _a, b, _space = two_controllers
    rc, ctrl = open_selected(b"serial:SN-BBBB")
    assert rc == B.NVME_OK
    assert serial_of(ctrl) == b"SN-BBBB"
    buf = np.zeros(4096, dtype=np.uint8)
    assert B.lib().nvme_read(ctrl, 1, 7, 4096, buf.ctypes.data) == B.NVME_OK
    assert np.array_equal(buf, b.expected(7, 4096))
    assert b.violations() == ""


@pytest.mark.parametrize("select,rc,message", [
    (b"serial:NOPE", B.NVME_ERR_NO_DEVICE, 'no NVMe controller (PCI class 01.08.02) matches" select=serial:NOPE'),
    (b"pci:00:05.0", B.NVME_ERR_NO_DEVICE, "select=pci:00:05.0 pci_functions=4"),
    (b"pci:zz", B.NVME_ERR_ARGUMENT, "storage.select wants pci:BB:DD.F"),
    (b"second", B.NVME_ERR_ARGUMENT, "storage.select is first, pci:BB:DD.F or serial:SN"),
])
def test_bad_selection_is_reported(two_controllers: tuple[Rig, Rig, ConfigSpace], select: bytes, rc: int,
                                   message: str) -> None:
    assert open_selected(select)[0] == rc
    assert message in B.take_log()


def test_no_nvme_controller_at_all() -> None:
    ConfigSpace({(0, 0, 0): Function(0x8086, 0x29C0, (0x06, 0x00, 0x00)),
                 (0, 1, 0): Function(0x8086, 0x2922, (0x01, 0x06, 0x01))}).install()
    B.lib().pci_enumerate()
    B.take_log()
    assert open_selected(b"first")[0] == B.NVME_ERR_NO_DEVICE
    assert "dte: nvme error=no_device" in B.take_log()
