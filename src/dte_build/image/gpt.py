"""GUID Partition Table writer and reader (UEFI 2.10 §5.2.3 protective MBR, §5.3 GPT disk layout).

Layout written: protective MBR at LBA 0, primary header at LBA 1, the 128 x 128-byte entry array from LBA 2,
and at the end of the disk the backup entry array followed by the backup header in the last LBA.
CRCs are CRC-32/IEEE (zlib), GUIDs are stored mixed-endian (`uuid.UUID.bytes_le`), names UTF-16LE.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..errors import DteError

# Fixed namespace for every GUID dte derives (uuid5), so the same inputs give the same disk.
DTE_NAMESPACE = uuid.UUID("5d8c6a4e-2f0b-5a39-9e57-0b1f6d2c7e41")

ESP_TYPE = uuid.UUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")  # UEFI 2.10 §5.3.3 table 5.7
WEIGHTS_TYPE = uuid.UUID("37ec13c1-6a25-4592-b112-756bc636b8bc")  # dte's own raw weights partition
TYPE_NAMES = {ESP_TYPE: "EFI System", WEIGHTS_TYPE: "dte weights"}

SIGNATURE = b"EFI PART"
REVISION = 0x00010000
HEADER_SIZE = 92
ENTRY_COUNT = 128
ENTRY_SIZE = 128
ARRAY_BYTES = ENTRY_COUNT * ENTRY_SIZE
_HEADER = struct.Struct("<8sIIIIQQQQ16sQIII")  # §5.3.2 table 5.5, 92 bytes
_ENTRY = struct.Struct("<16s16sQQQ72s")  # §5.3.3 table 5.6, 128 bytes
_MBR_RECORD = struct.Struct("<B3sB3sII")  # §5.2.3 table 5.4, one 16-byte partition record


@dataclass(frozen=True)
class Partition:
    """One GPT entry; `first_lba`/`last_lba` inclusive, as on disk."""

    number: int
    type_guid: uuid.UUID
    unique_guid: uuid.UUID
    first_lba: int
    last_lba: int
    name: str
    attributes: int = 0

    @property
    def sectors(self) -> int:
        return self.last_lba - self.first_lba + 1

    def to_dict(self, sector_size: int) -> dict[str, object]:
        return {
            "number": self.number, "name": self.name, "type": str(self.type_guid),
            "type_name": TYPE_NAMES.get(self.type_guid, "unknown"), "guid": str(self.unique_guid),
            "first_lba": self.first_lba, "last_lba": self.last_lba,
            "offset": self.first_lba * sector_size, "size": self.sectors * sector_size,
        }


@dataclass(frozen=True)
class GptTable:
    disk_guid: uuid.UUID
    sector_size: int
    disk_sectors: int
    first_usable_lba: int
    last_usable_lba: int
    partitions: tuple[Partition, ...]

    def partition(self, number: int) -> Partition | None:
        return next((p for p in self.partitions if p.number == number), None)


def array_sectors(sector_size: int) -> int:
    """Sectors one entry array takes (32 at 512-byte sectors)."""
    return -(-ARRAY_BYTES // sector_size)


def usable_range(disk_sectors: int, sector_size: int) -> tuple[int, int]:
    """First and last LBA a partition may use on a disk of `disk_sectors` sectors."""
    n = array_sectors(sector_size)
    return 2 + n, disk_sectors - 2 - n


def derive_guid(*parts: object) -> uuid.UUID:
    """A reproducible GUID: uuid5 of the dte namespace and what it names (content hashes included)."""
    return uuid.uuid5(DTE_NAMESPACE, "/".join(str(p) for p in parts))


def protective_mbr(disk_sectors: int, sector_size: int) -> bytes:
    """LBA 0: one 0xEE record from LBA 1 over the whole disk, size clamped to 0xFFFFFFFF (§5.2.3)."""
    size = min(disk_sectors - 1, 0xFFFFFFFF)
    record = _MBR_RECORD.pack(0, b"\x00\x02\x00", 0xEE, b"\xff\xff\xff", 1, size)
    mbr = bytearray(sector_size)
    mbr[446:462] = record
    mbr[510:512] = b"\x55\xaa"
    return bytes(mbr)


def _entry_array(partitions: tuple[Partition, ...]) -> bytes:
    array = bytearray(ARRAY_BYTES)
    for p in partitions:
        if not 1 <= p.number <= ENTRY_COUNT:
            raise DteError(f"GPT partition number {p.number} is outside 1..{ENTRY_COUNT}")
        name = p.name.encode("utf-16-le")
        if len(name) > 72:
            raise DteError(f"GPT partition name '{p.name}' is longer than 36 UTF-16 characters")
        at = (p.number - 1) * ENTRY_SIZE
        array[at:at + ENTRY_SIZE] = _ENTRY.pack(p.type_guid.bytes_le, p.unique_guid.bytes_le, p.first_lba,
                                                p.last_lba, p.attributes, name)
    return bytes(array)


def _header(table: GptTable, my_lba: int, alternate_lba: int, array_lba: int, array_crc: int) -> bytes:
    fields = [SIGNATURE, REVISION, HEADER_SIZE, 0, 0, my_lba, alternate_lba, table.first_usable_lba,
              table.last_usable_lba, table.disk_guid.bytes_le, array_lba, ENTRY_COUNT, ENTRY_SIZE, array_crc]
    fields[3] = zlib.crc32(_HEADER.pack(*fields))
    return _HEADER.pack(*fields).ljust(table.sector_size, b"\x00")


@dataclass(frozen=True)
class GptBlob:
    """One piece of the GPT to write: byte offset on the disk and its bytes."""

    offset: int
    data: bytes
    what: str


def make_table(disk_guid: uuid.UUID, disk_size: int, sector_size: int,
               partitions: list[Partition]) -> GptTable:
    """Check the partitions fit, do not overlap, and return the table for `render`."""
    if disk_size % sector_size:
        raise DteError(f"disk size {disk_size} is not a multiple of the {sector_size}-byte sector")
    sectors = disk_size // sector_size
    first, last = usable_range(sectors, sector_size)
    ordered = sorted(partitions, key=lambda p: p.first_lba)
    for p in ordered:
        if p.first_lba < first or p.last_lba > last or p.last_lba < p.first_lba:
            raise DteError(f"partition {p.number} '{p.name}' (LBA {p.first_lba}..{p.last_lba}) does not fit "
                           f"the disk's usable LBAs {first}..{last}")
    for a, b in zip(ordered, ordered[1:]):
        if b.first_lba <= a.last_lba:
            raise DteError(f"partitions {a.number} and {b.number} overlap")
    return GptTable(disk_guid, sector_size, sectors, first, last, tuple(partitions))


def render(table: GptTable) -> list[GptBlob]:
    """The protective MBR, both headers and both entry arrays, backup first and LBA 0 last.

    Writing them in this order means an interrupted write never leaves a disk that looks partitioned.
    """
    ss, last_lba = table.sector_size, table.disk_sectors - 1
    array = _entry_array(table.partitions)
    array_crc = zlib.crc32(array)
    backup_array_lba = last_lba - array_sectors(ss)
    return [
        GptBlob(backup_array_lba * ss, array, "backup GPT entries"),
        GptBlob(last_lba * ss, _header(table, last_lba, 1, backup_array_lba, array_crc), "backup GPT header"),
        GptBlob(2 * ss, array, "primary GPT entries"),
        GptBlob(1 * ss, _header(table, 1, last_lba, 2, array_crc), "primary GPT header"),
        GptBlob(0, protective_mbr(table.disk_sectors, ss), "protective MBR"),
    ]


def _read_at(f: BinaryIO, offset: int, size: int) -> bytes:
    f.seek(offset)
    data = f.read(size)
    if len(data) != size:
        raise DteError(f"disk ends at byte {offset + len(data)}, GPT needs bytes up to {offset + size}")
    return data


def _parse_header(raw: bytes, where: str, expect_lba: int) -> tuple[Any, ...]:
    fields = _HEADER.unpack(raw[:HEADER_SIZE])
    if fields[0] != SIGNATURE:
        raise DteError(f"{where} GPT header: no 'EFI PART' signature (not a GPT disk?)")
    if fields[2] != HEADER_SIZE or fields[11] != ENTRY_COUNT or fields[12] != ENTRY_SIZE:
        raise DteError(f"{where} GPT header: unsupported header size or entry geometry")
    zeroed = list(fields)
    zeroed[3] = 0
    if zlib.crc32(_HEADER.pack(*zeroed)) != fields[3]:
        raise DteError(f"{where} GPT header: CRC-32 mismatch (corrupt header)")
    if fields[5] != expect_lba:
        raise DteError(f"{where} GPT header: MyLBA is {fields[5]}, expected {expect_lba}")
    return fields


def _check_layout(fields: tuple[Any, ...], where: str, sectors: int, ss: int) -> None:
    """Every LBA a header names lies on the disk, and the usable range sits between the two GPT copies
    (UEFI 2.10 §5.3.2: the entry array after the primary header and before FirstUsableLBA, the backup array
    after LastUsableLBA and before the backup header)."""
    my_lba, alt_lba, first, last, array_lba = fields[5], fields[6], fields[7], fields[8], fields[10]
    n = array_sectors(ss)
    for name, lba in (("AlternateLBA", alt_lba), ("FirstUsableLBA", first), ("LastUsableLBA", last),
                      ("PartitionEntryLBA", array_lba)):
        if lba >= sectors:
            raise DteError(f"{where} GPT header: {name} {lba} is past the disk's last LBA {sectors - 1} (corrupt)")
    if not 2 + n <= first <= last:
        raise DteError(f"{where} GPT header: usable LBAs {first}..{last} are not a range after the primary "
                       f"GPT (corrupt)")
    primary = my_lba == 1
    header, other = (my_lba, alt_lba) if primary else (alt_lba, my_lba)
    if not header < first or not last < other:
        raise DteError(f"{where} GPT header: usable LBAs {first}..{last} overlap the GPT headers at LBA "
                       f"{header} and {other} (corrupt)")
    lo, hi = (header + 1, first) if primary else (last + 1, my_lba)
    if not (lo <= array_lba and array_lba + n <= hi):
        raise DteError(f"{where} GPT header: entry array at LBA {array_lba} lies outside LBA {lo}..{hi - 1} "
                       f"(corrupt)")


def _parse_entries(array: bytes, first_usable: int, last_usable: int) -> tuple[Partition, ...]:
    found = []
    for i in range(ENTRY_COUNT):
        type_le, unique_le, first, last, attrs, name = _ENTRY.unpack_from(array, i * ENTRY_SIZE)
        type_guid = uuid.UUID(bytes_le=type_le)
        if type_guid.int == 0:
            continue
        text = name.decode("utf-16-le", errors="replace").split("\x00", 1)[0]
        if not first_usable <= first <= last <= last_usable:
            raise DteError(f"GPT partition {i + 1}: LBA {first}..{last} is not inside the usable LBAs "
                           f"{first_usable}..{last_usable} (corrupt)")
        found.append(Partition(i + 1, type_guid, uuid.UUID(bytes_le=unique_le), first, last, text, attrs))
    guids = [p.unique_guid for p in found]
    if len(set(guids)) != len(guids):
        raise DteError("GPT lists the same partition GUID twice (duplicated entries; corrupt)")
    ordered = sorted(found, key=lambda p: p.first_lba)
    for a, b in zip(ordered, ordered[1:]):
        if b.first_lba <= a.last_lba:
            raise DteError(f"GPT partitions {a.number} and {b.number} overlap (corrupt)")
    return tuple(found)


def read_gpt(f: BinaryIO, disk_size: int, sector_size: int = 512) -> GptTable:
    """Parse and validate a GPT: protective MBR, both headers and arrays (signature, CRCs, agreement), every LBA
    against the disk's size before it is read, and the partitions against the usable range and each other.

    The backup header may sit before the disk's end: a drive larger than the image it was flashed with keeps the
    backup where the image put it (docs/flash.md). The table's `disk_sectors` is then the image's size."""
    ss = sector_size
    sectors = disk_size // ss
    if sectors < 3 + 2 * array_sectors(ss):
        raise DteError(f"disk of {disk_size} bytes is too small to hold a GPT")
    mbr = _read_at(f, 0, ss)
    if mbr[510:512] != b"\x55\xaa" or mbr[446 + 4] != 0xEE:
        raise DteError("LBA 0 is not a protective MBR (no 0x55AA signature or no 0xEE partition record)")
    primary = _parse_header(_read_at(f, ss, ss), "primary", 1)
    _check_layout(primary, "primary", sectors, ss)
    backup_lba = primary[6]
    backup = _parse_header(_read_at(f, backup_lba * ss, ss), "backup", backup_lba)
    _check_layout(backup, "backup", sectors, ss)
    if backup[6] != 1:
        raise DteError(f"backup GPT header: AlternateLBA is {backup[6]}, expected 1 (corrupt)")
    arrays = []
    for fields, where in ((primary, "primary"), (backup, "backup")):
        array = _read_at(f, fields[10] * ss, ARRAY_BYTES)
        if zlib.crc32(array) != fields[13]:
            raise DteError(f"{where} GPT entry array: CRC-32 mismatch (corrupt partition entries)")
        arrays.append(array)
    if arrays[0] != arrays[1] or primary[7:10] != backup[7:10]:
        raise DteError("primary and backup GPT disagree")
    return GptTable(uuid.UUID(bytes_le=primary[9]), ss, backup_lba + 1, primary[7], primary[8],
                    _parse_entries(arrays[0], primary[7], primary[8]))
