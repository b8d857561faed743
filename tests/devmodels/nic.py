"""The hosted NIC driver library for tests: virtio-net and mlx5 drivers (firmware/drivers) with PCI, the C network
stack and the device models (virtio_net_model.c, mlx5_model.c), built through _hostc.build like the other hosted C."""

from __future__ import annotations

import ctypes as C
import functools
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from _hostc import build, firmware
from dte_build.paths import REPO_ROOT

DEVMODELS = REPO_ROOT / "tests/devmodels"
FIRMWARE = ["drivers/drvlog.c", "drivers/pci.c", "drivers/virtio_net.c", "drivers/mlx5.c", "drivers/mlx5_cmd.c",
            "drivers/mlx5_queues.c", "lib/fmt.c", "net/net_stack.c"]
MODELS = ["mmio_trap.c", "virtio_net_model.c", "mlx5_model.c", "mlx5_model_rings.c", "nic_glue.c",
          "platform_shim.c", "violation_log.c"]

VP, U8, U16, U32, U64, SZ = C.c_void_p, C.c_uint8, C.c_uint16, C.c_uint32, C.c_uint64, C.c_size_t


class VnetModelConfig(C.Structure):
    _fields_ = [("features", U64), ("mac", U8 * 6), ("device_id", U16), ("queue_max", U16),
                ("refuse_features_ok", U32), ("link_up", U32), ("omit_cfg_type", U32)]


class Mlx5ModelConfig(C.Structure):
    _fields_ = [("fw_major", U16), ("fw_minor", U16), ("fw_subminor", U16), ("cmdif_rev", U16),
                ("init_reads", U32), ("never_ready", U32), ("boot_pages", C.c_int32), ("init_pages", C.c_int32),
                ("supported_issi", U32), ("port_type", U32), ("reserved_lkey", U32), ("link_up", U32),
                ("mac", U8 * 6), ("regular_pages", C.c_int32)]


class Mlx5Config(C.Structure):
    _fields_ = [("init_timeout_ms", U32), ("command_timeout_ms", U32), ("queue_log_size", U32)]


class Mlx5Info(C.Structure):
    _fields_ = [("fw_major", U16), ("fw_minor", U16), ("fw_subminor", U16), ("cmdif_rev", U16),
                ("boot_pages", U32), ("init_pages", U32), ("regular_pages", U32),
                *[(n, U32) for n in ("uar", "pd", "transport_domain", "eqn", "tx_cqn", "rx_cqn", "tisn", "sqn",
                                     "rqn", "tirn", "flow_table", "flow_group", "reserved_lkey")],
                ("mac", U8 * 6)]


SIGNATURES: dict[str, tuple[object, list[object]]] = {
    "pci_init_custom": (None, [VP, VP, VP, U8, U8]),
    "pci_enumerate": (C.c_int, []),
    "pci_find_id": (VP, [U16, U16, C.c_int]),
    "pci_find_capability": (U8, [VP, U8, C.c_int]),
    "pci_config_read32": (U32, [U8, U8, U8, U16]),
    "virtio_net_probe": (VP, [VP]),
    "virtio_net_find": (VP, [C.c_int]),
    "virtio_net_init": (C.c_int, [VP]),
    "virtio_net_link_up": (C.c_bool, [VP]),
    "virtio_net_transmit": (C.c_int, [VP, C.c_char_p, SZ]),
    "virtio_net_poll_receive": (SZ, [VP, C.c_char_p, SZ]),
    "virtio_net_mac": (None, [VP, C.c_char_p]),
    "virtio_net_features": (U64, [VP]),
    "vnet_model_create": (VP, [C.POINTER(VnetModelConfig)]),
    "vnet_model_destroy": (None, [VP]),
    "vnet_model_inject": (C.c_int, [VP, C.c_char_p, SZ]),
    "vnet_model_take_tx": (SZ, [VP, C.c_char_p, SZ]),
    "vnet_model_set_link": (None, [VP, U32]),
    "vnet_model_status": (U8, [VP]),
    "vnet_model_driver_features": (U64, [VP]),
    "vnet_model_violations": (C.c_int, [VP, C.c_char_p, SZ]),
    "glue_stack_open_virtio": (C.c_int, [VP, U32]),
    "glue_stack_poll": (C.c_int, [C.c_int]),
    "mlx5_create": (VP, [VP, U64, C.POINTER(Mlx5Config)]),
    "mlx5_init": (C.c_int, [VP]),
    "mlx5_link_up": (C.c_bool, [VP]),
    "mlx5_transmit": (C.c_int, [VP, C.c_char_p, SZ]),
    "mlx5_poll_receive": (SZ, [VP, C.c_char_p, SZ]),
    "mlx5_mac": (None, [VP, C.c_char_p]),
    "mlx5_get_info": (C.POINTER(Mlx5Info), [VP]),
    "mlx5_status_name": (C.c_char_p, [U8]),
    "mlx5_model_create": (VP, [C.POINTER(Mlx5ModelConfig)]),
    "mlx5_model_destroy": (None, [VP]),
    "mlx5_model_bar": (VP, [VP]),
    "mlx5_model_fail": (None, [VP, U16, U8, U32]),
    "mlx5_model_command_log": (C.c_int, [VP, C.POINTER(U32), C.c_int]),
    "mlx5_model_pages": (None, [VP, C.POINTER(C.c_int32)]),
    "mlx5_model_inject": (C.c_int, [VP, C.c_char_p, SZ]),
    "mlx5_model_take_tx": (SZ, [VP, C.c_char_p, SZ]),
    "mlx5_model_violations": (C.c_int, [VP, C.c_char_p, SZ]),
    "shim_take_log": (SZ, [C.c_char_p, SZ]),
}


@functools.cache
def lib() -> C.CDLL:
    sources = [p for p in firmware(*FIRMWARE) if p.exists()] + [DEVMODELS / m for m in MODELS
                                                                 if (DEVMODELS / m).exists()]
    so = C.CDLL(str(build("libdte_nic", sources, shared=True)))
    for name, (res, args) in SIGNATURES.items():
        if hasattr(so, name):
            fn = getattr(so, name)
            fn.restype, fn.argtypes = res, args
    return so


def fn_address(name: str) -> int:
    """The address of an exported C function (for callbacks such as pci_init_custom's accessors)."""
    return C.cast(getattr(lib(), name), C.c_void_p).value or 0


def take_log() -> str:
    buf = C.create_string_buffer(1 << 16)
    lib().shim_take_log(buf, len(buf))
    return buf.value.decode()


def violations(prefix: str, model: int) -> str:
    buf = C.create_string_buffer(8192)
    n = getattr(lib(), f"{prefix}_violations")(model, buf, len(buf))
    return f"{n} violation(s):\n{buf.value.decode()}" if n else ""


class NicRig:
    """What the NIC test rigs share: the device model's transmit queue and violation log, the driver's receive,
    and tearing the model down. A subclass sets MODEL and DRIVER (the C prefixes, e.g. "mlx5_model" and "mlx5"),
    creates `self.model` and returns its driver handle from `driver()`."""

    MODEL = ""
    DRIVER = ""
    model: int

    def __init__(self) -> None:
        self.lib = lib()

    def driver(self) -> int:
        raise NotImplementedError

    def sent(self) -> bytes | None:
        buf = C.create_string_buffer(4096)
        n = getattr(self.lib, f"{self.MODEL}_take_tx")(self.model, buf, len(buf))
        return buf.raw[:n] if n else None

    def receive(self, capacity: int = 2048) -> bytes:
        buf = C.create_string_buffer(capacity)
        n = getattr(self.lib, f"{self.DRIVER}_poll_receive")(self.driver(), buf, capacity)
        return buf.raw[:n]

    def violations(self) -> str:
        return violations(self.MODEL, self.model)

    def close(self) -> None:
        getattr(self.lib, f"{self.MODEL}_destroy")(self.model)


R = TypeVar("R", bound=NicRig)


@contextmanager
def opened(rig: R) -> Iterator[R]:
    """`rig`, closed (its model destroyed) when the block ends."""
    try:
        yield rig
    finally:
        rig.close()


def random_frames(seed: int, count: int) -> list[bytes]:
    """`count` random Ethernet frames of 60..1514 bytes (the minimum without FCS .. a 1500-byte MTU), seeded."""
    rnd = random.Random(seed)
    return [rnd.randbytes(rnd.randint(60, 1514)) for _ in range(count)]
