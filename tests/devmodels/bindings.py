"""ctypes views of the hosted driver library: the NVMe driver API, the NVMe device model, the log shim."""

from __future__ import annotations

import ctypes as C
import functools

from .hosted import driver_library


class NvmeConfig(C.Structure):
    _fields_ = [("io_queues", C.c_uint32), ("queue_depth", C.c_uint32),
                ("command_timeout_ms", C.c_uint32), ("nsid", C.c_uint32)]


class NvmeInfo(C.Structure):
    _fields_ = [("serial", C.c_char * 21), ("model", C.c_char * 41), ("firmware", C.c_char * 9),
                ("vendor_id", C.c_uint16), ("version", C.c_uint32), ("nsid", C.c_uint32),
                ("namespace_blocks", C.c_uint64), ("block_bytes", C.c_uint32),
                ("max_transfer_bytes", C.c_uint32), ("page_bytes", C.c_uint32),
                ("doorbell_stride", C.c_uint32), ("max_queue_entries", C.c_uint32),
                ("ready_timeout_ms", C.c_uint32), ("io_queues", C.c_uint32), ("queue_depth", C.c_uint32)]


class ModelConfig(C.Structure):
    _fields_ = [("backing", C.c_void_p), ("nsze", C.c_uint64), ("lba_shift", C.c_uint32),
                ("lbaf_index", C.c_uint32), ("mdts", C.c_uint32), ("mqes", C.c_uint32), ("dstrd", C.c_uint32),
                ("cap_to", C.c_uint32), ("ready_delay_us", C.c_uint32), ("max_io_queues", C.c_uint32),
                ("reorder", C.c_uint32), ("serial", C.c_char * 21), ("model", C.c_char * 41),
                ("vendor_id", C.c_uint16)]


class ModelStats(C.Structure):
    _fields_ = [("io_commands", C.c_uint64), ("admin_commands", C.c_uint64), ("bytes_read", C.c_uint64),
                ("max_outstanding", C.c_uint32), ("max_transfer", C.c_uint32),
                ("prp_list_commands", C.c_uint32), ("io_queues_created", C.c_uint32)]


class PciBar(C.Structure):
    _fields_ = [("base", C.c_uint64), ("size", C.c_uint64), ("is_io", C.c_bool), ("is_64", C.c_bool),
                ("prefetchable", C.c_bool)]


class PciDevice(C.Structure):
    _fields_ = [("bus", C.c_uint8), ("dev", C.c_uint8), ("fn", C.c_uint8), ("header_type", C.c_uint8),
                ("vendor_id", C.c_uint16), ("device_id", C.c_uint16), ("class_code", C.c_uint8),
                ("subclass", C.c_uint8), ("prog_if", C.c_uint8), ("revision", C.c_uint8),
                ("secondary_bus", C.c_uint8), ("subordinate_bus", C.c_uint8), ("bars", PciBar * 6)]


class AcpiMcfgEntry(C.Structure):
    _fields_ = [("base", C.c_uint64), ("segment", C.c_uint16), ("bus_start", C.c_uint8), ("bus_end", C.c_uint8)]


PCI_READ32 = C.CFUNCTYPE(C.c_uint32, C.c_void_p, C.c_uint8, C.c_uint8, C.c_uint8, C.c_uint16)
PCI_WRITE32 = C.CFUNCTYPE(None, C.c_void_p, C.c_uint8, C.c_uint8, C.c_uint8, C.c_uint16, C.c_uint32)

class StorageLoad(C.Structure):
    _fields_ = [("pci", C.c_int), ("rsdp", C.c_void_p), ("select", C.c_char_p), ("byte_offset", C.c_uint64),
                ("bytes", C.c_uint64), ("dst", C.c_void_p), ("chunk_size", C.c_uint32),
                ("chunk_count", C.c_uint32), ("crc32c", C.POINTER(C.c_uint32)), ("max_queues", C.c_uint32),
                ("queue_depth", C.c_uint32)]


class StorageResult(C.Structure):
    _fields_ = [("ctrl", C.c_void_p), ("read_ns", C.c_uint64), ("verify_ns", C.c_uint64), ("queues", C.c_uint32),
                ("bad_chunk", C.c_int64)]


STORAGE_PCI_ACPI, STORAGE_PCI_PORTS, STORAGE_PCI_ENUMERATED = 0, 1, 2
STORAGE_ERR_CORRUPT, STORAGE_ERR_NO_PCI = -100, -101

# NVMe driver error codes (firmware/drivers/nvme.h).
NVME_OK = 0
NVME_ERR_NOT_READY = -1
NVME_ERR_FATAL = -2
NVME_ERR_TIMEOUT = -3
NVME_ERR_COMMAND = -4
NVME_ERR_ARGUMENT = -6
NVME_ERR_UNSUPPORTED = -7
NVME_ERR_NO_DEVICE = -8
NVME_ERR_FAILED = -9

FAULT_STATUS, FAULT_FATAL, FAULT_DROP, FAULT_NEVER_READY = 1, 2, 3, 4


@functools.cache
def lib() -> C.CDLL:
    so = C.CDLL(str(driver_library()))
    sigs = {
        "nvme_open": (C.c_int, [C.c_void_p, C.POINTER(NvmeConfig), C.POINTER(C.c_void_p)]),
        "nvme_get_info": (C.POINTER(NvmeInfo), [C.c_void_p]),
        "nvme_read": (C.c_int, [C.c_void_p, C.c_uint32, C.c_uint64, C.c_uint64, C.c_void_p]),
        "nvme_disable": (C.c_int, [C.c_void_p]),
        "nvme_error_name": (C.c_char_p, [C.c_int]),
        "nvme_status_name": (C.c_char_p, [C.c_uint8, C.c_uint8]),
        "nvme_model_create": (C.c_void_p, [C.POINTER(ModelConfig)]),
        "nvme_model_bar": (C.c_void_p, [C.c_void_p]),
        "nvme_model_inject": (None, [C.c_void_p, C.c_int, C.c_uint64, C.c_uint32, C.c_uint32]),
        "nvme_model_violations": (C.c_int, [C.c_void_p, C.c_char_p, C.c_size_t]),
        "nvme_model_stats": (None, [C.c_void_p, C.POINTER(ModelStats)]),
        "nvme_model_destroy": (None, [C.c_void_p]),
        "nvme_open_selected": (C.c_int, [C.c_char_p, C.POINTER(NvmeConfig), C.POINTER(C.c_void_p)]),
        "pci_init_ecam": (None, [C.c_uint64, C.c_uint8, C.c_uint8]),
        "pci_init_custom": (None, [PCI_READ32, PCI_WRITE32, C.c_void_p, C.c_uint8, C.c_uint8]),
        "pci_enumerate": (C.c_int, []),
        "pci_device_count": (C.c_int, []),
        "pci_device_at": (C.POINTER(PciDevice), [C.c_int]),
        "pci_find_class": (C.POINTER(PciDevice), [C.c_uint8, C.c_uint8, C.c_uint8, C.c_int]),
        "pci_find_id": (C.POINTER(PciDevice), [C.c_uint16, C.c_uint16, C.c_int]),
        "pci_find_address": (C.POINTER(PciDevice), [C.c_uint8, C.c_uint8, C.c_uint8]),
        "pci_enable": (None, [C.POINTER(PciDevice)]),
        "pci_log_devices": (None, []),
        "pci_config_read32": (C.c_uint32, [C.c_uint8, C.c_uint8, C.c_uint8, C.c_uint16]),
        "acpi_find_table": (C.c_void_p, [C.c_void_p, C.c_char_p]),
        "acpi_rsdp_from_uefi": (C.c_void_p, [C.c_void_p, C.c_uint64]),
        "acpi_mcfg_entry": (C.c_int, [C.c_void_p, C.c_int, C.POINTER(AcpiMcfgEntry)]),
        "storage_load": (C.c_int, [C.POINTER(StorageLoad), C.POINTER(StorageResult)]),
        "storage_read_bytes": (C.c_int, [C.c_void_p, C.c_uint32, C.c_uint64, C.c_uint64, C.c_void_p]),
        "shim_set_workers": (None, [C.c_int]),
        "shim_alloc_calls": (C.c_size_t, []),
        "shim_take_log": (C.c_size_t, [C.c_char_p, C.c_size_t]),
        "crc32c_update": (C.c_uint32, [C.c_uint32, C.c_void_p, C.c_size_t]),
        "crc32c_update_table": (C.c_uint32, [C.c_uint32, C.c_void_p, C.c_size_t]),
        "crc32c_update_sse42": (C.c_uint32, [C.c_uint32, C.c_void_p, C.c_size_t]),
        "crc32c_cpu_has_sse42": (C.c_bool, []),
    }
    for name, (res, args) in sigs.items():
        if hasattr(so, name):
            fn = getattr(so, name)
            fn.restype, fn.argtypes = res, args
    return so


def take_log() -> str:
    buf = C.create_string_buffer(1 << 16)
    lib().shim_take_log(buf, len(buf))
    return buf.value.decode()
