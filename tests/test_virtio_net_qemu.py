"""The virtio-net driver and the C network stack against QEMU's own virtio-net-pci device: a test-only UEFI app
(tests/qemu/virtio_net_probe.c) leaves boot services, brings the NIC up and echoes UDP datagrams; this test sends
them from 127.0.0.1 through user networking (hostfwd bound to 127.0.0.1) and checks the answers.

User networking runs with restrict=off here: libslirp's udp_input drops every guest UDP datagram when restricted
(`if (slirp->restricted) goto bad;`, after the BOOTP/TFTP cases), hostfwd replies included, so with restrict=on
a UDP service in the guest can receive but never answer. The probe only ever sends to 10.0.2.2 (the host)."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from _efiprobe import build_probe_disk, need_qemu_tools
from dte_build import qemu
from dte_build.paths import FIRMWARE_DIR

pytestmark = pytest.mark.qemu

PROBE_DIR = Path(__file__).resolve().parent / "qemu"
SOURCES = [PROBE_DIR / "virtio_net_probe.c", PROBE_DIR / "probe_platform.c"] + [FIRMWARE_DIR / s for s in (
    "drivers/drvlog.c", "drivers/pci.c", "drivers/acpi.c", "drivers/virtio_net.c", "net/net_stack.c",
    "lib/fmt.c", "lib/mem.c")]
MAC = "52:54:00:12:34:56"


@pytest.fixture(scope="module")
def boot_disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need_qemu_tools()
    return build_probe_disk(SOURCES, tmp_path_factory.mktemp("vnet-probe"))


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("legacy", ["off", "on"])   # 1af4:1041 modern; 1af4:1000 transitional (modern caps too)
def test_qemu_virtio_net_echoes_udp(boot_disk: Path, legacy: str) -> None:
    port = free_udp_port()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(1.0)
    messages = [f"hello {i} from the host".encode() for i in range(3)]
    replies: list[bytes] = []

    def talk() -> None:
        for msg in messages:
            for _ in range(20):        # slirp may drop the first datagram while it resolves the guest's MAC
                sock.sendto(msg, ("127.0.0.1", port))
                try:
                    data, _addr = sock.recvfrom(2048)
                except TimeoutError:
                    continue
                replies.append(data)
                break

    talker = threading.Thread(target=talk, daemon=True)

    def on_line(line: str) -> None:
        if "dte: probe listening" in line and not talker.is_alive():
            talker.start()

    config = qemu.QemuConfig(drive="ide", memory_mib=256, nic=True, extra_args=(
        "-netdev", f"user,id=n0,restrict=off,hostfwd=udp:127.0.0.1:{port}-:7777",
        "-device", f"virtio-net-pci,netdev=n0,mac={MAC},disable-legacy={'off' if legacy == 'on' else 'on'}"))
    try:
        result = qemu.run_config(boot_disk, config, timeout=150, on_line=on_line)
        talker.join(timeout=5)
    finally:
        sock.close()
    assert result.ok, result.console[-3000:]
    ready = result.status["virtio_net"]
    assert ready.get("mac") == MAC                       # from the device config space (virtio 1.2 5.1.4)
    assert ready.get("link") == "1"
    ids = {f.get("id") for f in result.all("pci")}
    assert ("1af4:1000" if legacy == "on" else "1af4:1041") in ids, result.console[-2000:]
    assert replies == [b"echo:" + m for m in messages]
