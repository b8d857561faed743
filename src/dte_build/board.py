"""Board files: one declarative TOML per machine under `boards/`, validated on load."""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DteError
from .paths import BOARDS_DIR, REPO_ROOT

REGION_NAMES = ("runtime", "scratch", "weights", "kv_cache")
PLATFORMS = ("qemu", "metal")
KNOWN_FEATURES = {
    "sse4.2", "avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512bw", "avx512vl", "avx512dq",
    "avx512vnni", "avx512bf16",
}
ESP_FIRST_LBA = 2048
THERMAL_DEFAULTS: dict[str, int] = {"target_c": 85, "critical_c": 95, "hysteresis_c": 5, "power_limit_w": 0,
                                    "sample_ms": 100}


@dataclass(frozen=True)
class Region:
    name: str
    size_mib: int
    min_mib: int


@dataclass(frozen=True)
class Board:
    """A validated board: everything the build, the firmware config header and `dte run` need."""

    name: str
    description: str
    platform: str
    cpu_name: str
    march: str
    features: tuple[str, ...]
    vector_bits: int
    cores: int
    threads_per_core: int
    use_smt: bool
    memory_mib: int
    regions: tuple[Region, ...]
    storage: dict[str, Any]
    network: dict[str, Any]
    default_model: Path | None
    qemu: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None
    persona_file: Path | None = None   # [persona] file: the identity compiled into the firmware (docs/identity.md)
    thermal: dict[str, int] = field(default_factory=lambda: dict(THERMAL_DEFAULTS))   # [thermal] (docs/thermal.md)

    @property
    def weights_lba(self) -> int:
        return int(self.storage["weights_lba"])

    @property
    def sector_size(self) -> int:
        return int(self.storage["sector_size"])

    @property
    def esp_mib(self) -> int:
        return int(self.storage["esp_mib"])

    @property
    def weights_offset(self) -> int:
        """Byte offset of the weights' first byte on the disk."""
        return self.weights_lba * self.sector_size

    def region(self, name: str) -> Region:
        return next(r for r in self.regions if r.name == name)

    @property
    def max_workers(self) -> int:
        return self.cores * (self.threads_per_core if self.use_smt else 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "platform": self.platform,
            "cpu": {
                "name": self.cpu_name, "march": self.march, "features": list(self.features),
                "vector_bits": self.vector_bits, "cores": self.cores,
                "threads_per_core": self.threads_per_core, "use_smt": self.use_smt,
            },
            "memory": {
                "total_mib": self.memory_mib,
                "regions": [{"name": r.name, "size_mib": r.size_mib, "min_mib": r.min_mib} for r in self.regions],
            },
            "storage": dict(self.storage),
            "network": dict(self.network),
            "model": {"default": str(self.default_model) if self.default_model else None},
            "qemu": dict(self.qemu),
            "persona": {"file": str(self.persona_file) if self.persona_file else None},
            "thermal": dict(self.thermal),
        }


def list_boards() -> list[Board]:
    """Every board under `boards/`, sorted by name."""
    return [load_board(p) for p in sorted(BOARDS_DIR.glob("*.toml"))]


def board_names() -> list[str]:
    return sorted(p.stem for p in BOARDS_DIR.glob("*.toml"))


def board_file(name_or_path: str | Path) -> Path:
    """The TOML file of a board given by name (`qemu-q35`) or path."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = BOARDS_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            raise DteError(f"unknown board '{name_or_path}'",
                           f"choose one of: {', '.join(board_names())} (see `dte boards`)")
    if not path.is_file():
        raise DteError(f"board file {path} does not exist")
    return path


def load_board(name_or_path: str | Path) -> Board:
    """Load a board by name (`qemu-q35`) or by path to a TOML file, validating every field."""
    path = board_file(name_or_path)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise DteError(f"board file {path.name}: invalid TOML: {exc}") from None
    return _parse(data, path)


class _Fields:
    """Typed access to one TOML table, raising a DteError naming the file and key."""

    def __init__(self, data: Any, where: str, path: Path) -> None:
        if not isinstance(data, dict):
            raise DteError(f"board file {path.name}: [{where}] must be a table")
        self.data, self.where, self.path = data, where, path

    def fail(self, key: str, what: str) -> DteError:
        return DteError(f"board file {self.path.name}: {self.where}.{key} {what}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.data:
            if default is ...:
                raise self.fail(key, "is missing")
            return default
        value = self.data[key]
        if isinstance(value, bool) and kind is int or not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise self.fail(key, f"must be a {names}, not {type(value).__name__} {value!r}")
        return value

    def positive(self, key: str, default: Any = ...) -> int:
        value = self.get(key, int, default)
        if value <= 0:
            raise self.fail(key, f"must be positive, not {value}")
        return value


def _table(data: dict[str, Any], key: str, path: Path, required: bool = True) -> _Fields:
    if key not in data:
        if required:
            raise DteError(f"board file {path.name}: missing table [{key}]")
        return _Fields({}, key, path)
    return _Fields(data[key], key, path)


def _parse(data: dict[str, Any], path: Path) -> Board:
    board = _table(data, "board", path)
    cpu = _table(data, "cpu", path)
    memory = _table(data, "memory", path)
    storage = _table(data, "storage", path)
    network = _table(data, "network", path)
    model = _table(data, "model", path, required=False)
    qemu = _table(data, "qemu", path, required=False)
    persona = _table(data, "persona", path, required=False)
    thermal = _table(data, "thermal", path, required=False)

    name = board.get("name", str)
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
        raise board.fail("name", f"'{name}' must be lowercase letters, digits and dashes")
    if name != path.stem and path.parent == BOARDS_DIR:
        raise board.fail("name", f"'{name}' must match the file name '{path.stem}'")
    platform = board.get("platform", str)
    if platform not in PLATFORMS:
        raise board.fail("platform", f"must be one of {', '.join(PLATFORMS)}, not '{platform}'")

    features = tuple(cpu.get("features", list))
    unknown = [f for f in features if f not in KNOWN_FEATURES]
    if unknown:
        raise cpu.fail("features", f"has unknown feature(s) {', '.join(map(str, unknown))}")
    vector_bits = cpu.get("vector_bits", int)
    if vector_bits not in (128, 256, 512):
        raise cpu.fail("vector_bits", f"must be 128, 256 or 512, not {vector_bits}")
    if vector_bits == 512 and "avx512f" not in features:
        raise cpu.fail("vector_bits", "is 512 but features lack avx512f")
    if vector_bits == 256 and "avx2" not in features:
        raise cpu.fail("vector_bits", "is 256 but features lack avx2")

    regions = _regions(memory, path)
    total_mib = memory.positive("total_mib")
    wanted = sum(r.min_mib for r in regions)
    if wanted > total_mib:
        raise memory.fail("regions", f"need at least {wanted} MiB but total_mib is {total_mib}")

    _check_storage(storage)
    _check_network(network)

    default_model = model.get("default", str, None)
    persona_file = persona.get("file", str, None)
    if persona_file is not None and not (REPO_ROOT / persona_file).is_file():
        raise persona.fail("file", f"'{persona_file}' does not exist (paths are relative to the repository)")
    return Board(
        name=name,
        description=board.get("description", str, ""),
        platform=platform,
        cpu_name=cpu.get("name", str, name),
        march=cpu.get("march", str),
        features=features,
        vector_bits=vector_bits,
        cores=cpu.positive("cores"),
        threads_per_core=cpu.positive("threads_per_core", 1),
        use_smt=cpu.get("use_smt", bool, False),
        memory_mib=total_mib,
        regions=regions,
        storage=dict(storage.data),
        network=dict(network.data),
        default_model=(REPO_ROOT / default_model) if default_model else None,
        qemu=dict(qemu.data),
        source=path,
        persona_file=(REPO_ROOT / persona_file) if persona_file else None,
        thermal=_thermal(thermal),
    )


def _regions(memory: _Fields, path: Path) -> tuple[Region, ...]:
    items = memory.get("regions", list)
    regions: list[Region] = []
    for i, item in enumerate(items):
        region = _Fields(item, f"memory.regions[{i}]", path)
        name = region.get("name", str)
        if name not in REGION_NAMES:
            raise region.fail("name", f"'{name}' is not one of {', '.join(REGION_NAMES)}")
        size, least = region.positive("size_mib"), region.positive("min_mib")
        if least > size:
            raise region.fail("min_mib", f"({least}) exceeds size_mib ({size})")
        regions.append(Region(name, size, least))
    missing = [n for n in REGION_NAMES if n not in {r.name for r in regions}]
    if missing or len(regions) != len(REGION_NAMES):
        raise memory.fail("regions", f"must list each of {', '.join(REGION_NAMES)} once")
    return tuple(regions)


def _thermal(thermal: _Fields) -> dict[str, int]:
    """The thermal envelope: target/critical/hysteresis in degrees C (Tctl), package power limit in W (0: none),
    sample period in ms. Missing keys take THERMAL_DEFAULTS."""
    unknown = sorted(set(thermal.data) - set(THERMAL_DEFAULTS))
    if unknown:
        raise thermal.fail(unknown[0], f"is not a thermal key (known: {', '.join(THERMAL_DEFAULTS)})")
    values = {key: thermal.get(key, int, default) for key, default in THERMAL_DEFAULTS.items()}
    if not 40 <= values["target_c"] < values["critical_c"] <= 125:
        raise thermal.fail("critical_c", f"({values['critical_c']}) must exceed target_c ({values['target_c']}); "
                           "both within 40..125")
    if not 1 <= values["hysteresis_c"] < values["target_c"] - 30:
        raise thermal.fail("hysteresis_c", f"must be 1..{values['target_c'] - 31}, not {values['hysteresis_c']}")
    if not 0 <= values["power_limit_w"] <= 4000:
        raise thermal.fail("power_limit_w", f"must be 0 (none) .. 4000, not {values['power_limit_w']}")
    if not 10 <= values["sample_ms"] <= 10000:
        raise thermal.fail("sample_ms", f"must be 10..10000, not {values['sample_ms']}")
    return values


def _check_storage(storage: _Fields) -> None:
    if storage.get("driver", str) != "nvme":
        raise storage.fail("driver", "must be 'nvme' (the only storage driver)")
    sector = storage.get("sector_size", int)
    if sector not in (512, 4096):
        raise storage.fail("sector_size", f"must be 512 or 4096, not {sector}")
    esp_mib = storage.positive("esp_mib")
    if esp_mib < 33:
        raise storage.fail("esp_mib", f"must be at least 33 (FAT32 minimum), not {esp_mib}")
    lba = storage.positive("weights_lba")
    esp_end = ESP_FIRST_LBA * 512 + esp_mib * 1024 * 1024
    if lba * sector < esp_end:
        raise storage.fail("weights_lba", f"({lba}) lies inside the ESP, which ends at byte {esp_end}")
    if (lba * sector) % (1024 * 1024):
        raise storage.fail("weights_lba", f"({lba}) must start on a 1 MiB boundary")
    select = storage.get("select", str, "first")
    if not re.fullmatch(r"first|pci:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]|serial:\S+", select):
        raise storage.fail("select", f"'{select}' must be 'first', 'pci:BB:DD.F' or 'serial:SN'")


def _check_network(network: _Fields) -> None:
    if network.get("driver", str) not in ("virtio-net", "mlx5"):
        raise network.fail("driver", "must be 'virtio-net' or 'mlx5'")
    for key in ("ipv4", "netmask", "gateway"):
        try:
            ipaddress.IPv4Address(network.get(key, str))
        except ipaddress.AddressValueError:
            raise network.fail(key, "is not an IPv4 address") from None
    port = network.get("port", int)
    if not 0 < port < 65536:
        raise network.fail("port", f"must be 1..65535, not {port}")
    mac = network.get("mac", str, "nic")
    if mac != "nic" and not re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", mac):
        raise network.fail("mac", f"'{mac}' must be 'nic' or aa:bb:cc:dd:ee:ff")
    idle = network.get("session_idle_s", int, 600)
    if not 0 <= idle <= 86400:
        raise network.fail("session_idle_s", f"must be 0..86400 seconds (0: never), not {idle}")
