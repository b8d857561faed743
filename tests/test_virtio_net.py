"""virtio-net driver (firmware/drivers/virtio_net.c) against the simulated PCI function in
tests/devmodels/virtio_net_model.c, and the C network stack on top of it.

Expected values come from the virtio 1.2 specification (status bits 2.1, feature bits 5.1.3 and 6, the capability
layout of 4.1.4) and from the frames the test itself builds; ARP replies are parsed here with `struct` (RFC 826).
"""

from __future__ import annotations

import ctypes as C
import shutil
import struct
from contextlib import AbstractContextManager

import pytest

from devmodels import nic

pytestmark = pytest.mark.skipif(shutil.which("clang-19") is None and shutil.which("clang") is None,
                                reason="clang is needed to build the hosted driver library")

# virtio 1.2 section 2.1 status bits, 5.1.3 / 6 feature bits.
ACKNOWLEDGE, DRIVER, DRIVER_OK, FEATURES_OK, FAILED = 1, 2, 4, 8, 128
F_CSUM, F_GUEST_CSUM, F_MAC, F_MRG_RXBUF, F_STATUS, F_CTRL_VQ, F_VERSION_1 = (
    1 << 0, 1 << 1, 1 << 5, 1 << 15, 1 << 16, 1 << 17, 1 << 32)
OFFERED = F_CSUM | F_GUEST_CSUM | F_MAC | F_MRG_RXBUF | F_STATUS | F_CTRL_VQ | F_VERSION_1
MAC = bytes.fromhex("525400abcdef")
ERR_NO_DEVICE, ERR_FEATURES = -1, -2


class Rig(nic.NicRig):
    MODEL, DRIVER = "vnet_model", "virtio_net"

    def __init__(self, **kw: int) -> None:
        super().__init__()
        cfg = nic.VnetModelConfig(features=kw.get("features", OFFERED), device_id=kw.get("device_id", 0x1041),
                                  queue_max=kw.get("queue_max", 256), refuse_features_ok=kw.get("refuse", 0),
                                  link_up=kw.get("link_up", 1), omit_cfg_type=kw.get("omit", 0))
        cfg.mac[:] = list(MAC)
        self.model = self.lib.vnet_model_create(C.byref(cfg))
        assert self.model
        self.lib.pci_init_custom(nic.fn_address("vnet_model_cfg_read32"), nic.fn_address("vnet_model_cfg_write32"),
                                 self.model, 0, 0)
        assert self.lib.pci_enumerate() == 1
        self.dev = self.lib.pci_find_id(0x1AF4, kw.get("device_id", 0x1041), 0)
        nic.take_log()
        self.vn = self.lib.virtio_net_probe(self.dev)

    def init(self) -> int:
        return self.lib.virtio_net_init(self.vn)

    def send(self, frame: bytes) -> int:
        return self.lib.virtio_net_transmit(self.vn, frame, len(frame))

    def driver(self) -> int:
        return self.vn


def rig(**kw: int) -> AbstractContextManager[Rig]:
    return nic.opened(Rig(**kw))


frames = nic.random_frames


def test_capability_walk_finds_vendor_capabilities_past_msix() -> None:
    with rig() as r:
        # The model's list: MSI-X (0x11) at 0x40, then vendor-specific (0x09) common/notify/isr/device.
        assert r.lib.pci_find_capability(r.dev, 0x11, 0) == 0x40
        assert [r.lib.pci_find_capability(r.dev, 0x09, n) for n in range(5)] == [0x4C, 0x5C, 0x70, 0x80, 0]
        assert r.lib.pci_find_capability(r.dev, 0x05, 0) == 0


def test_handshake_features_and_mac() -> None:
    with rig() as r:
        assert r.vn
        assert r.init() == 0, nic.take_log()
        assert r.lib.vnet_model_status(r.model) == ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK
        # Only VERSION_1, MAC and STATUS: no offloads, no mergeable buffers, no control queue.
        assert r.lib.vnet_model_driver_features(r.model) == F_VERSION_1 | F_MAC | F_STATUS
        mac = C.create_string_buffer(6)
        r.lib.virtio_net_mac(r.vn, mac)
        assert mac.raw == MAC
        assert r.lib.virtio_net_link_up(r.vn)
        assert "dte: virtio_net ready mac=52:54:00:ab:cd:ef" in nic.take_log()
        assert r.violations() == ""


def test_transitional_device_with_modern_capabilities_is_accepted() -> None:
    with rig(device_id=0x1000) as r:
        assert r.vn and r.init() == 0
        assert r.violations() == ""


def test_frames_out_arrive_byte_identical() -> None:
    with rig(queue_max=8) as r:                 # 8 descriptors: 50 frames reuse every one several times
        assert r.init() == 0
        for frame in frames(1, 50):
            assert r.send(frame) == 0
            assert r.sent() == frame
        assert r.sent() is None
        assert r.violations() == ""


def test_frames_in_arrive_at_the_driver() -> None:
    with rig(queue_max=8) as r:
        assert r.init() == 0
        assert r.receive() == b""
        for frame in frames(2, 40):
            assert r.lib.vnet_model_inject(r.model, frame, len(frame)) == 0
            assert r.receive() == frame
        batch = frames(3, 8)                    # a full ring, then one more finds no buffer
        for frame in batch:
            assert r.lib.vnet_model_inject(r.model, frame, len(frame)) == 0
        assert r.lib.vnet_model_inject(r.model, b"x" * 60, 60) == -1
        assert [r.receive() for _ in batch] == batch
        assert r.violations() == ""


def test_oversized_frame_is_dropped_and_the_next_one_arrives() -> None:
    with rig() as r:
        assert r.init() == 0
        big, small = bytes(range(256)) * 4, b"\x01" * 64
        for frame in (big, small):
            assert r.lib.vnet_model_inject(r.model, frame, len(frame)) == 0
        assert r.receive(capacity=512) == b""
        assert r.receive(capacity=512) == small


def test_device_refusing_features_ok_is_reported() -> None:
    with rig(refuse=1) as r:
        assert r.init() == ERR_FEATURES
        assert r.lib.vnet_model_status(r.model) & FAILED       # section 3.1.1: the driver gives up with FAILED
        assert 'dte: virtio_net error=features text="device did not accept the features' in nic.take_log()
        assert r.send(b"\0" * 60) != 0


def test_device_without_version_1_is_refused() -> None:
    with rig(features=F_MAC | F_STATUS) as r:
        assert r.init() == ERR_FEATURES
        assert "VIRTIO_F_VERSION_1" in nic.take_log()


@pytest.mark.parametrize("omit", [1, 2, 3, 4])
def test_missing_modern_capability_means_no_device(omit: int) -> None:
    with rig(omit=omit) as r:
        assert not r.vn
        assert "dte: virtio_net error=no_device" in nic.take_log()


def test_link_status_follows_the_device_config() -> None:
    with rig() as r:
        assert r.init() == 0
        r.lib.vnet_model_set_link(r.model, 0)
        assert not r.lib.virtio_net_link_up(r.vn)
        r.lib.vnet_model_set_link(r.model, 1)
        assert r.lib.virtio_net_link_up(r.vn)
    with rig(features=F_VERSION_1 | F_MAC, link_up=0) as r:   # no STATUS feature: link assumed up (5.1.4)
        assert r.init() == 0
        assert r.lib.virtio_net_link_up(r.vn)


def test_queue_size_capped_to_device_maximum() -> None:
    for queue_max, used in ((4, 4), (1024, 256), (100, 64)):
        with rig(queue_max=queue_max) as r:
            assert r.init() == 0
            assert f"rx={used} tx={used}" in nic.take_log()
            assert r.violations() == ""


def test_net_stack_answers_arp_through_virtio_net() -> None:
    stack_ip, peer_ip, peer_mac = bytes([10, 0, 2, 15]), bytes([10, 0, 2, 2]), bytes.fromhex("020000000002")
    with rig() as r:
        assert r.lib.glue_stack_open_virtio(r.vn, int.from_bytes(stack_ip, "big")) == 0, nic.take_log()
        # RFC 826 request: who has 10.0.2.15? tell 10.0.2.2
        arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, peer_mac, peer_ip, bytes(6), stack_ip)
        request = b"\xff" * 6 + peer_mac + b"\x08\x06" + arp + bytes(18)
        assert r.lib.vnet_model_inject(r.model, request, len(request)) == 0
        assert r.lib.glue_stack_poll(4) >= 1
        reply = r.sent()
        assert reply is not None
        assert reply[:6] == peer_mac and reply[6:12] == MAC and reply[12:14] == b"\x08\x06"
        htype, ptype, hlen, plen, op, sha, spa, tha, tpa = struct.unpack_from("!HHBBH6s4s6s4s", reply, 14)
        assert (htype, ptype, hlen, plen, op) == (1, 0x0800, 6, 4, 2)
        assert (sha, spa, tha, tpa) == (MAC, stack_ip, peer_mac, peer_ip)
        assert r.violations() == ""
