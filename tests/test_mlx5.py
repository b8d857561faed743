"""mlx5 driver (firmware/drivers/mlx5*.c) against the simulated ConnectX function in tests/devmodels/mlx5_model*.c.

The driver is UNVERIFIED ON HARDWARE: these tests are all there is. Expected values come from the PRM (the
bring-up order of "HCA Initialization", opcodes and op_mods of the "Command Reference", status names of the
"Return Status Summary", the 60-byte Ethernet minimum), from what the model was told to report, and from the
frames the test builds.
"""

from __future__ import annotations

import ctypes as C
import shutil
from contextlib import AbstractContextManager

import pytest

from devmodels import nic

pytestmark = pytest.mark.skipif(shutil.which("clang-19") is None and shutil.which("clang") is None,
                                reason="clang is needed to build the hosted driver library")

MAC = bytes.fromhex("b8cef6a1b2c3")
OK, ERR_TIMEOUT, ERR_COMMAND, ERR_UNSUPPORTED = 0, -2, -3, -5

# PRM "HCA Initialization" order, then the objects a NIC needs, as (opcode, op_mod).
BRING_UP = [
    (0x104, 0, "ENABLE_HCA"), (0x10A, 0, "QUERY_ISSI"), (0x10B, 0, "SET_ISSI"),
    (0x107, 1, "QUERY_PAGES boot"), (0x108, 1, "MANAGE_PAGES give"),
    (0x100, 1, "QUERY_HCA_CAP general current"), (0x109, 0, "SET_HCA_CAP general"),
    (0x107, 2, "QUERY_PAGES init"), (0x108, 1, "MANAGE_PAGES give"), (0x102, 0, "INIT_HCA"),
    (0x107, 3, "QUERY_PAGES regular"), (0x108, 1, "MANAGE_PAGES give"),
    (0x203, 0, "QUERY_SPECIAL_CONTEXTS"), (0x802, 0, "ALLOC_UAR"), (0x800, 0, "ALLOC_PD"),
    (0x816, 0, "ALLOC_TRANSPORT_DOMAIN"), (0x754, 0, "QUERY_NIC_VPORT_CONTEXT"), (0x301, 0, "CREATE_EQ"),
    (0x400, 0, "CREATE_CQ"), (0x400, 0, "CREATE_CQ"), (0x912, 0, "CREATE_TIS"), (0x904, 0, "CREATE_SQ"),
    (0x905, 0, "MODIFY_SQ"), (0x908, 0, "CREATE_RQ"), (0x909, 0, "MODIFY_RQ"), (0x900, 0, "CREATE_TIR"),
    (0x930, 0, "CREATE_FLOW_TABLE"), (0x933, 0, "CREATE_FLOW_GROUP"), (0x936, 0, "SET_FLOW_TABLE_ENTRY"),
    (0x92F, 0, "SET_FLOW_TABLE_ROOT"),
]


class Rig(nic.NicRig):
    MODEL, DRIVER = "mlx5_model", "mlx5"

    def __init__(self, *, boot_pages: int = 3, init_pages: int = 5, regular_pages: int = 2, queue_log_size: int = 3,
                 **kw: int) -> None:
        super().__init__()
        cfg = nic.Mlx5ModelConfig(fw_major=16, fw_minor=35, fw_subminor=2000, cmdif_rev=kw.get("cmdif_rev", 5),
                                  init_reads=kw.get("init_reads", 3), never_ready=kw.get("never_ready", 0),
                                  boot_pages=boot_pages, init_pages=init_pages,
                                  supported_issi=kw.get("supported_issi", 0x3), port_type=kw.get("port_type", 1),
                                  reserved_lkey=0x100, link_up=kw.get("link_up", 1), regular_pages=regular_pages)
        cfg.mac[:] = list(MAC)
        self.model = self.lib.mlx5_model_create(C.byref(cfg))
        assert self.model
        dcfg = nic.Mlx5Config(init_timeout_ms=200, command_timeout_ms=200, queue_log_size=queue_log_size)
        self.dev = self.lib.mlx5_create(self.lib.mlx5_model_bar(self.model), 0x10000, C.byref(dcfg))
        nic.take_log()

    def init(self) -> int:
        return self.lib.mlx5_init(self.dev)

    def commands(self) -> list[tuple[int, int]]:
        buf = (C.c_uint32 * 256)()
        n = self.lib.mlx5_model_command_log(self.model, buf, 256)
        return [(v >> 16, v & 0xFFFF) for v in buf[:n]]

    def pages(self) -> list[int]:
        out = (C.c_int32 * 6)()
        self.lib.mlx5_model_pages(self.model, out)
        return list(out)

    def send(self, frame: bytes) -> int:
        return self.lib.mlx5_transmit(self.dev, frame, len(frame))

    def driver(self) -> int:
        return self.dev

    def inject(self, frame: bytes) -> int:
        return self.lib.mlx5_model_inject(self.model, frame, len(frame))


def rig(**kw: int) -> AbstractContextManager[Rig]:
    return nic.opened(Rig(**kw))


frames = nic.random_frames


def test_bring_up_follows_the_prm_order() -> None:
    with rig() as r:
        assert r.init() == OK, nic.take_log() + r.violations()
        assert r.commands() == [(op, mod) for op, mod, _ in BRING_UP]
        assert r.violations() == ""
        info = r.lib.mlx5_get_info(r.dev).contents
        assert (info.fw_major, info.fw_minor, info.fw_subminor, info.cmdif_rev) == (16, 35, 2000, 5)
        assert bytes(info.mac) == MAC and info.reserved_lkey == 0x100
        mac = C.create_string_buffer(6)
        r.lib.mlx5_mac(r.dev, mac)
        assert mac.raw == MAC
        log = nic.take_log()
        assert "dte: mlx5 ready fw=16.35.2000 mac=b8:ce:f6:a1:b2:c3 boot_pages=3 init_pages=5" in log


@pytest.mark.parametrize("boot,init,regular,manage_commands", [(0, 0, 0, 0), (1, 4096, 0, 2), (7, 5000, 9, 4)])
def test_page_handoff_matches_query_pages(boot: int, init: int, regular: int, manage_commands: int) -> None:
    with rig(boot_pages=boot, init_pages=init, regular_pages=regular) as r:
        assert r.init() == OK, nic.take_log() + r.violations()
        assert r.pages() == [boot, init, regular] * 2    # given == announced, per stage
        # at most 4096 pages per MANAGE_PAGES: 5000 init pages take two commands
        assert sum(1 for op, _ in r.commands() if op == 0x108) == manage_commands
        info = r.lib.mlx5_get_info(r.dev).contents
        assert (info.boot_pages, info.init_pages, info.regular_pages) == (boot, init, regular)
        assert r.violations() == ""


def test_frames_out_through_the_sq_arrive_byte_identical() -> None:
    with rig(queue_log_size=3) as r:               # 8 WQEs: 40 frames wrap the ring five times
        assert r.init() == OK
        for frame in frames(1, 40):
            assert r.send(frame) == OK
            assert r.sent() == frame
        assert r.sent() is None
        assert r.violations() == ""


def test_short_frame_is_padded_to_the_ethernet_minimum() -> None:
    with rig() as r:
        assert r.init() == OK
        short = bytes(range(1, 43))                   # a 42-byte ARP frame
        assert r.send(short) == OK
        assert r.sent() == short + bytes(60 - 42)     # 802.3: 60 bytes without FCS


def test_frames_in_through_the_rq_arrive_at_the_driver() -> None:
    with rig(queue_log_size=3) as r:
        assert r.init() == OK
        assert r.receive() == b""
        for frame in frames(2, 30):
            assert r.inject(frame) == 0
            assert r.receive() == frame
        batch = frames(3, 8)                          # a full ring, then one more finds no posted WQE
        assert [r.inject(f) for f in batch] == [0] * 8
        assert r.inject(b"\x00" * 60) == -1
        assert [r.receive() for _ in batch] == batch
        assert r.receive() == b""
        assert r.violations() == ""


def test_oversized_receive_is_dropped_and_the_next_arrives() -> None:
    with rig() as r:
        assert r.init() == OK
        assert r.inject(b"\xAB" * 1500) == 0 and r.inject(b"\xCD" * 64) == 0
        assert r.receive(capacity=1000) == b""
        assert r.receive(capacity=1000) == b"\xCD" * 64


@pytest.mark.parametrize("opcode,name", [(0x104, "ENABLE_HCA"), (0x108, "MANAGE_PAGES"), (0x102, "INIT_HCA"),
                                         (0x400, "CREATE_CQ"), (0x92F, "SET_FLOW_TABLE_ROOT")])
def test_failing_command_is_reported_and_bring_up_stops(opcode: int, name: str) -> None:
    with rig() as r:
        r.lib.mlx5_model_fail(r.model, opcode, 0x03, 0x1234ABCD)
        assert r.init() == ERR_COMMAND
        log = nic.take_log()
        assert f"dte: mlx5 error=command op={name} opcode=0x{opcode:x} status=BAD_PARAM(0x3) syndrome=0x1234abcd" in log
        assert "dte: mlx5 init_failed error=command" in log
        cmds = r.commands()
        assert cmds[-1][0] == opcode                  # nothing was sent after the failure
        expected = [(op, mod) for op, mod, _ in BRING_UP]
        assert cmds == expected[:len(cmds)]
        assert r.lib.mlx5_transmit(r.dev, b"\x00" * 60, 60) != OK


def test_status_names_follow_the_prm() -> None:
    lib = nic.lib()
    table = {0x01: b"INTERNAL_ERR", 0x02: b"BAD_OP", 0x03: b"BAD_PARAM", 0x04: b"BAD_SYS_STATE",
             0x05: b"BAD_RESOURCE", 0x06: b"RESOURCE_BUSY", 0x08: b"EXCEED_LIM", 0x09: b"BAD_RES_STATE",
             0x0A: b"BAD_INDEX", 0x0F: b"NO_RESOURCES", 0x50: b"BAD_INPUT_LEN", 0x51: b"BAD_OUTPUT_LEN"}
    for status, name in table.items():
        assert lib.mlx5_status_name(status) == name


def test_firmware_that_stays_initializing_times_out() -> None:
    with rig(never_ready=1) as r:
        assert r.init() == ERR_TIMEOUT
        assert 'dte: mlx5 error=timeout text="firmware still initializing before_cmdq" timeout_ms=200' in nic.take_log()
        assert r.commands() == []


@pytest.mark.parametrize("kw,text", [({"supported_issi": 0x1}, "ISSI 1 not supported"),
                                     ({"cmdif_rev": 4}, "command interface revision"),
                                     ({"port_type": 0}, "port is not Ethernet")])
def test_unsupported_devices_are_refused(kw: dict[str, int], text: str) -> None:
    with rig(**kw) as r:
        assert r.init() == ERR_UNSUPPORTED
        assert text in nic.take_log()
        assert r.violations() == ""


def test_link_state_from_query_vport_state() -> None:
    with rig(link_up=1) as r:
        assert not r.lib.mlx5_link_up(r.dev)          # not initialized yet
        assert r.init() == OK
        assert r.lib.mlx5_link_up(r.dev)
    with rig(link_up=0) as r:
        assert r.init() == OK
        assert not r.lib.mlx5_link_up(r.dev)
