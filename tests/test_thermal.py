"""The thermal envelope (issue 17): sensor decoding against the register definitions (Linux k10temp / AMD PPR for
Zen's SMN THM registers, Intel SDM Vol. 3B/4 for the thermal and RAPL MSRs), the SMN index/data access path
against a root-complex device model, the governor against a simulated heat curve, and the firmware build and boot.

Expected values are computed here from the register definitions (bit fields and units), never by the C code."""

from __future__ import annotations

import ctypes as C
import subprocess
from pathlib import Path

import pytest

from devmodels import bindings as B
from devmodels.amd_root import AmdRootComplex
from devmodels.hosted import find_clang
from devmodels.pci_space import ConfigSpace, Function

pytestmark = pytest.mark.skipif(find_clang() is None, reason="clang-19 is needed to build the hosted library")

RDMSR = C.CFUNCTYPE(C.c_int, C.c_void_p, C.c_uint32, C.POINTER(C.c_uint64))
MAX_CCDS = 12


class ThermalCpu(C.Structure):
    _fields_ = [("vendor", C.c_char * 13), ("brand", C.c_char * 49), ("family", C.c_uint), ("model", C.c_uint),
                ("hypervisor", C.c_bool), ("leaf6_eax", C.c_uint32), ("ext7_edx", C.c_uint32),
                ("rdmsr", RDMSR), ("ctx", C.c_void_p)]


class Thermal(C.Structure):
    _fields_ = [("cpu", C.c_void_p), ("kind", C.c_uint8), ("power", C.c_bool), ("temp_reason", C.c_char_p),
                ("power_reason", C.c_char_p), ("tctl_offset_mc", C.c_int32), ("ccd_offset", C.c_uint32),
                ("ccd_present", C.c_uint16), ("tjmax_mc", C.c_int32), ("energy_msr", C.c_uint32),
                ("energy_shift", C.c_uint32), ("last_energy", C.c_uint32), ("last_ns", C.c_uint64),
                ("have_last", C.c_bool)]


class Sample(C.Structure):
    _fields_ = [("temp_ok", C.c_bool), ("tctl_mc", C.c_int32), ("tdie_mc", C.c_int32), ("n_ccd", C.c_uint8),
                ("ccd_mc", C.c_int32 * MAX_CCDS), ("power_ok", C.c_bool), ("pkg_mw", C.c_uint32)]


class GovConfig(C.Structure):
    _fields_ = [("target_mc", C.c_int32), ("critical_mc", C.c_int32), ("hysteresis_mc", C.c_int32),
                ("power_limit_mw", C.c_uint32), ("max_workers", C.c_uint32), ("min_workers", C.c_uint32)]


class Governor(C.Structure):
    _fields_ = [("cfg", GovConfig), ("state", C.c_uint8), ("workers", C.c_uint32), ("samples", C.c_uint32),
                ("paced_samples", C.c_uint32), ("critical_trips", C.c_uint32), ("changes", C.c_uint32)]


NONE, AMD_ZEN, INTEL = 0, 1, 2
UNAVAILABLE, NORMAL, PACED, CRITICAL = 0, 1, 2, 3


@pytest.fixture(scope="module")
def lib() -> C.CDLL:
    so = B.lib()
    for name, res, args in [
        ("dte_thermal_probe", C.c_int, [C.POINTER(Thermal), C.POINTER(ThermalCpu)]),
        ("dte_thermal_read", None, [C.POINTER(Thermal), C.c_uint64, C.POINTER(Sample)]),
        ("dte_thermal_zen_tctl_mc", C.c_int32, [C.c_uint32]),
        ("dte_thermal_zen_ccd_mc", C.c_bool, [C.c_uint32, C.POINTER(C.c_int32)]),
        ("dte_thermal_zen_offset_mc", C.c_int32, [C.c_char_p, C.c_uint]),
        ("dte_thermal_power_mw", C.c_uint32, [C.c_uint32, C.c_uint32, C.c_uint32, C.c_uint64]),
        ("dte_governor_init", None, [C.POINTER(Governor), C.POINTER(GovConfig)]),
        ("dte_governor_update", C.c_bool, [C.POINTER(Governor), C.POINTER(Sample)]),
    ]:
        fn = getattr(so, name)
        fn.restype, fn.argtypes = res, args
    return so


# ---- decoding (k10temp: CUR_TEMP bits 31:21 in 0.125 degC; -49 degC when bit 19 or both bits 17:16 are set) ----

@pytest.mark.parametrize("reg,expected", [
    (580 << 21, 580 * 125),                              # 72.5 degC
    ((580 << 21) | (1 << 19), 580 * 125 - 49000),        # range select: reading is offset by 49 degrees
    ((580 << 21) | (3 << 16), 580 * 125 - 49000),        # both TJ_SEL bits: the same offset
    ((580 << 21) | (1 << 16), 580 * 125),                # one TJ_SEL bit alone: no offset
    (0x7FF << 21, 0x7FF * 125),                          # the largest reading, 255.875 degC
    (0, 0),
])
def test_tctl_decoding(lib: C.CDLL, reg: int, expected: int) -> None:
    assert lib.dte_thermal_zen_tctl_mc(reg) == expected


def test_ccd_decoding(lib: C.CDLL) -> None:
    mc = C.c_int32()
    assert lib.dte_thermal_zen_ccd_mc((1 << 11) | 0x3F0, C.byref(mc)) and mc.value == 0x3F0 * 125 - 49000
    assert not lib.dte_thermal_zen_ccd_mc(0x3F0, C.byref(mc))   # bit 11 clear: this CCD is not there


@pytest.mark.parametrize("brand,family,offset", [
    ("AMD Ryzen 7 1800X Eight-Core Processor", 0x17, 20000),
    ("AMD Ryzen 7 2700X Eight-Core Processor", 0x17, 10000),
    ("AMD Ryzen Threadripper 2950X 16-Core Processor", 0x17, 27000),
    ("AMD Ryzen 7 1800X Eight-Core Processor", 0x19, 0),   # the offsets are family 17h only
    ("AMD EPYC 9654 96-Core Processor", 0x19, 0),
])
def test_tctl_offsets(lib: C.CDLL, brand: str, family: int, offset: int) -> None:
    assert lib.dte_thermal_zen_offset_mc(brand.encode(), family) == offset


@pytest.mark.parametrize("e0,e1,shift,dt_ns", [
    (1000, 1000 + 360 * 2**16 // 10, 16, 100_000_000),   # 36 J in 100 ms at 1/65536 J per count: 360 W
    (0xFFFF_FF00, 0x0000_0100, 14, 1_000_000),          # the 32-bit counter wrapped between the reads
    (5, 5, 16, 50_000_000),                             # idle: 0 W
])
def test_power_from_energy_counter(lib: C.CDLL, e0: int, e1: int, shift: int, dt_ns: int) -> None:
    joules = ((e1 - e0) % 2**32) / 2**shift
    expected_mw = joules / (dt_ns / 1e9) * 1000
    got = lib.dte_thermal_power_mw(e0, e1, shift, dt_ns)
    assert abs(got - expected_mw) <= max(1.0, expected_mw * 1e-3)   # the driver works in whole microseconds


# ---- sensors through the device models ----

class Msrs:
    """Recorded MSR values; an absent MSR raises #GP (rdmsr returns -1). A list value steps on each read."""

    def __init__(self, values: dict[int, int | list[int]]) -> None:
        self.values = {k: (list(v) if isinstance(v, list) else v) for k, v in values.items()}
        self.reads: list[int] = []
        self.hook = RDMSR(self._read)

    def _read(self, _ctx: int, msr: int, out: C.POINTER(C.c_uint64)) -> int:  # type: ignore[valid-type]
        self.reads.append(msr)
        if msr not in self.values:
            return -1
        v = self.values[msr]
        out[0] = v.pop(0) if isinstance(v, list) else v
        return 0


def cpu(vendor: str, family: int, model: int, msrs: Msrs, *, brand: str = "", hypervisor: bool = False,
        leaf6: int = 0, ext7: int = 0) -> ThermalCpu:
    return ThermalCpu(vendor.encode(), brand.encode(), family, model, hypervisor, leaf6, ext7, msrs.hook, None)


def probe(lib: C.CDLL, c: ThermalCpu) -> Thermal:
    t = Thermal()
    lib.dte_thermal_probe(C.byref(t), C.byref(c))
    return t


def read(lib: C.CDLL, t: Thermal, now_ns: int) -> Sample:
    s = Sample()
    lib.dte_thermal_read(C.byref(t), now_ns, C.byref(s))
    return s


def install(functions: dict[tuple[int, int, int], Function]) -> ConfigSpace:
    space = ConfigSpace(functions)
    space.install()
    return space


def ccd_reg(celsius: float) -> int:
    return (1 << 11) | int(round((celsius + 49) * 8))


GENOA = "AMD EPYC 9654 96-Core Processor"
AMD_ENERGY_UNIT = 0x000A1003   # RAPL_PWR_UNIT: ESU (bits 12:8) = 0x10, one count = 1/65536 J
RAPL = 1 << 14                 # CPUID Fn8000_0007 EDX


def test_genoa_reads_tctl_ccds_and_power_through_smn(lib: C.CDLL) -> None:
    ccds = [60.0 + i for i in range(12)]
    smn = {0x59800: 580 << 21} | {0x59954 + 0x300 + 4 * i: ccd_reg(t) for i, t in enumerate(ccds)}
    root = AmdRootComplex(smn)
    space = install({(0, 0, 0): root})
    joules = 36.0                                      # 360 W over the 100 ms between the two reads
    start = 123_456
    msrs = Msrs({0xC0010299: AMD_ENERGY_UNIT, 0xC001029B: [start, start, start + int(joules * 2**16)]})
    c = cpu("AuthenticAMD", 0x19, 0x11, msrs, brand=GENOA, ext7=RAPL)
    t = probe(lib, c)
    assert t.kind == AMD_ZEN and t.temp_reason is None and t.power and t.power_reason is None
    assert t.ccd_offset == 0x300 and t.ccd_present == 0xFFF
    first = read(lib, t, 1_000_000_000)
    assert first.temp_ok and first.tctl_mc == 72500 and first.tdie_mc == 72500 and not first.power_ok
    assert [first.ccd_mc[i] for i in range(first.n_ccd)] == [int(t * 1000) for t in ccds]
    second = read(lib, t, 1_100_000_000)
    assert second.power_ok and abs(second.pkg_mw - 360_000) <= 360
    # Every SMN data read comes right after the index write that selects it; nothing is read unselected.
    assert not root.violations
    pairs = list(zip(root.accesses[::2], root.accesses[1::2]))
    assert pairs and all(i[0] == "index" and d == ("data", i[1]) for i, d in pairs)
    del space


def test_genoa_with_fewer_ccds_lists_only_valid_ones(lib: C.CDLL) -> None:
    smn = {0x59800: 600 << 21, 0x59954 + 0x300: ccd_reg(70.0), 0x59954 + 0x300 + 8: ccd_reg(71.0)}
    space = install({(0, 0, 0): AmdRootComplex(smn)})
    t = probe(lib, cpu("AuthenticAMD", 0x19, 0x11, Msrs({}), brand=GENOA))
    s = read(lib, t, 1)
    assert t.ccd_present == 0b101 and s.n_ccd == 2 and list(s.ccd_mc[:2]) == [70000, 71000]
    assert t.power_reason == b"no_rapl_in_cpuid_8000_0007" and not s.power_ok
    del space


def test_zen1_applies_the_tctl_offset(lib: C.CDLL) -> None:
    space = install({(0, 0, 0): AmdRootComplex({0x59800: 640 << 21})})
    t = probe(lib, cpu("AuthenticAMD", 0x17, 0x01, Msrs({}), brand="AMD Ryzen 7 1800X Eight-Core Processor"))
    s = read(lib, t, 1)
    assert s.tctl_mc == 80000 and s.tdie_mc == 60000
    del space


@pytest.mark.parametrize("case,reason", [
    ("qemu_tcg", b"amd_family_before_zen"),         # QEMU -cpu max: AuthenticAMD family 15
    ("intel_bridge", b"no_amd_root_complex_at_00:00.0"),
    ("hypervisor", b"hypervisor_hides_sensors"),
    ("smn_dead", b"smn_tctl_reads_nothing"),
    ("unknown_vendor", b"unknown_cpu_vendor"),
])
def test_unavailable_sensors_say_why(lib: C.CDLL, case: str, reason: bytes) -> None:
    q35_host = Function(0x8086, 0x29C0, (0x06, 0x00, 0x00))
    msrs = Msrs({})   # every MSR read would #GP
    c = {
        "qemu_tcg": cpu("AuthenticAMD", 0xF, 0x6B, msrs),
        "intel_bridge": cpu("AuthenticAMD", 0x19, 0x11, msrs, brand=GENOA, ext7=RAPL),
        "hypervisor": cpu("AuthenticAMD", 0x19, 0x11, msrs, hypervisor=True),
        "smn_dead": cpu("AuthenticAMD", 0x19, 0x11, msrs),
        "unknown_vendor": cpu("CentaurHauls", 6, 0xF, msrs),
    }[case]
    space = install({(0, 0, 0): AmdRootComplex({}) if case == "smn_dead" else q35_host})
    t = probe(lib, c)
    assert t.kind == NONE and t.temp_reason == reason
    s = read(lib, t, 1)
    assert not s.temp_ok and not s.power_ok
    if case == "intel_bridge":   # RAPL claimed by CPUID but the MSR faults: reported, not a crash
        assert t.power_reason == b"rdmsr_energy_unit_faulted" and msrs.reads == [0xC0010299]
    del space


def test_intel_package_temperature_and_power(lib: C.CDLL) -> None:
    # MSR_TEMPERATURE_TARGET bits 23:16 = TjMax 100; IA32_PACKAGE_THERM_STATUS bits 22:16 = 28 below TjMax;
    # MSR_RAPL_POWER_UNIT bits 12:8 = 14 (61 uJ); MSR_PKG_ENERGY_STATUS advances 20 J in 200 ms = 100 W.
    msrs = Msrs({0x1A2: 100 << 16, 0x1B1: (28 << 16) | 0x8800_0000, 0x19C: 0,
                 0x606: 0xA0E03, 0x611: [0, 0, 20 * 2**14]})
    t = probe(lib, cpu("GenuineIntel", 6, 0x8F, msrs, leaf6=(1 << 0) | (1 << 6)))
    assert t.kind == INTEL and t.tjmax_mc == 100000
    s0, s1 = read(lib, t, 0), read(lib, t, 200_000_000)
    assert s0.temp_ok and s0.tctl_mc == 72000 and s1.power_ok and abs(s1.pkg_mw - 100_000) <= 100
    assert 0x19C not in msrs.reads   # package sensor (CPUID.06H:EAX bit 6) is preferred


def test_intel_without_dts_is_unavailable_and_never_reads_msrs(lib: C.CDLL) -> None:
    msrs = Msrs({})
    t = probe(lib, cpu("GenuineIntel", 6, 0x8F, msrs, leaf6=0))
    assert t.kind == NONE and t.temp_reason == b"no_digital_thermal_sensor_in_cpuid_6"
    assert t.power_reason == b"rdmsr_energy_unit_faulted"


# ---- the governor against a simulated heat curve ----

class Package:
    """First-order thermal model of a package: C dT/dt = P(workers) - (T - T_ambient) / R, with idle power plus
    a per-worker share. Numbers shaped like a 96-core server part: 416 W flat out, thermal resistance such that
    flat out settles above the critical temperature (so the governor must act), time constant R*C = 20 s."""

    def __init__(self, ambient: float = 35.0, r: float = 0.15, idle_w: float = 80.0, per_worker_w: float = 3.5):
        self.t, self.ambient, self.r, self.idle_w, self.per_worker_w = ambient, ambient, r, idle_w, per_worker_w
        self.c = 20.0 / r

    def power(self, workers: int) -> float:
        return self.idle_w + self.per_worker_w * workers

    def step(self, workers: int, dt: float) -> None:
        self.t += dt / self.c * (self.power(workers) - (self.t - self.ambient) / self.r)


def run_governor(lib: C.CDLL, pkg: Package, seconds: float, gov: Governor, *, power: bool = False,
                 dt: float = 0.1, on_step=None) -> list[tuple[float, int, int]]:  # noqa: ANN001
    trace = []
    for i in range(int(seconds / dt)):
        if on_step:
            on_step(i * dt, pkg)
        s = Sample(temp_ok=True, tctl_mc=int(pkg.t * 1000), tdie_mc=int(pkg.t * 1000),
                   power_ok=power, pkg_mw=int(pkg.power(gov.workers) * 1000))
        lib.dte_governor_update(C.byref(gov), C.byref(s))
        trace.append((pkg.t, gov.workers, gov.state))
        pkg.step(gov.workers, dt)
    return trace


def governor(lib: C.CDLL, **kw: int) -> Governor:
    cfg = GovConfig(**{"target_mc": 85000, "critical_mc": 95000, "hysteresis_mc": 5000, "power_limit_mw": 0,
                       "max_workers": 96, "min_workers": 1} | kw)
    g = Governor()
    lib.dte_governor_init(C.byref(g), C.byref(cfg))
    return g


def test_governor_settles_under_target_without_oscillating(lib: C.CDLL) -> None:
    pkg = Package()
    assert pkg.ambient + pkg.r * pkg.power(96) > 95   # unpaced, this package would trip
    g = governor(lib)
    trace = run_governor(lib, pkg, 600, g)
    settled = trace[1200:]                              # after 2 minutes (6 time constants)
    temps, workers = [t for t, _, _ in settled], [w for _, w, _ in settled]
    # Bounds from the rule: it cuts as soon as Tctl reaches the target, so one 100 ms step can overshoot it by
    # at most dT = P/C * dt (< 0.3 degC here); below target - hysteresis it adds max/16 workers at a time.
    assert max(temps) < 85.5
    assert g.critical_trips == 0 and all(s != CRITICAL for _, _, s in trace)
    assert min(temps) > 85 - 5 - 3                      # it uses the headroom instead of idling the machine
    assert max(workers) - min(workers) <= 96 // 4       # oscillation bounded by one cut (a quarter) of the pool
    assert all(s == PACED for _, _, s in settled)


def test_governor_trips_at_critical_and_recovers_with_hysteresis(lib: C.CDLL) -> None:
    pkg = Package()
    g = governor(lib)

    def weather(t: float, p: Package) -> None:         # the fans fail at 100 s and come back at 300 s
        p.r = 1.0 if 100 <= t < 300 else 0.15

    trace = run_governor(lib, pkg, 700, g, on_step=weather)
    crit = [i for i, (_, _, s) in enumerate(trace) if s == CRITICAL]
    assert crit and g.critical_trips == 1
    assert all(trace[i][1] == 0 for i in crit)        # stopped: no worker runs while critical
    first, last = crit[0], crit[-1]
    assert trace[first][0] >= 95 and all(s == CRITICAL for _, _, s in trace[first:last + 1])
    assert trace[last + 1][0] <= 80                    # resumes only at target - hysteresis
    assert trace[last + 1][1] == 48                    # at half strength
    assert max(t for t, _, _ in trace[-1500:]) < 85.5  # and settles under target again


def test_governor_holds_the_power_limit(lib: C.CDLL) -> None:
    pkg = Package(r=0.05)                              # a cold package: only the power limit binds
    g = governor(lib, power_limit_mw=300_000)
    trace = run_governor(lib, pkg, 300, g, power=True)
    settled_power = [pkg.power(w) for _, w, _ in trace[600:]]
    assert max(settled_power) <= 300 + 96 // 16 * pkg.per_worker_w   # at most one step above the limit
    assert min(settled_power) >= 300 * 0.95 - 96 // 4 * pkg.per_worker_w


def test_governor_without_sensors_never_paces(lib: C.CDLL) -> None:
    g = governor(lib)
    s = Sample()
    for _ in range(10):
        lib.dte_governor_update(C.byref(g), C.byref(s))
    assert g.state == UNAVAILABLE and g.workers == 96 and g.paced_samples == 0


# ---- the firmware: epyc9654 build carries the sensor code; QEMU boots with the sensors unavailable ----

@pytest.mark.slow
def test_epyc9654_firmware_contains_guarded_sensor_reads(tmp_path: Path) -> None:
    from dte_build.board import load_board
    from dte_build.toolchain import build_firmware

    fw = build_firmware(load_board("epyc9654"), build_dir=tmp_path / "build")
    objdump = "llvm-objdump-19"
    text = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(fw.efi_path)], capture_output=True,
                          text=True, check=True).stdout
    # The #GP guard: the exception stub compares the vector with 13 and the fault RIP with the guard.
    assert "cmpq\t$0xd, (%rsp)" in text
    # Every rdmsr in the thermal code is guarded: the instruction right before it publishes the guard.
    lines = [line.split("\t", 1)[-1].strip() for line in text.splitlines() if "\t" in line]
    guarded = [i for i, line in enumerate(lines) if line.startswith("rdmsr")]
    assert guarded
    assert any("dte_gp_guard_rip" in lines[i - 1] or "(%rip)" in lines[i - 1] for i in guarded)
    # The SMN addresses and MSR numbers of the sensors are in the image (k10temp / PPR / SDM values).
    for constant in ("0x59800", "0xc001029b", "0xc0010299", "0x1b1"):
        assert constant in text, constant


@pytest.mark.qemu
def test_qemu_boot_reports_thermal_unavailable_and_the_gp_guard_recovers(tmp_path: Path) -> None:
    from dte_build.board import load_board
    from dte_build.image.builder import build_image
    from dte_build.qemu import run_image
    from dte_build.toolchain import FirmwareOptions, build_firmware

    board = load_board("qemu-q35")
    fw = build_firmware(board, options=FirmwareOptions(extra_defines={"DTE_TEST_GP_GUARD": "1"}),
                        build_dir=tmp_path / "build")
    build_image(board, fw.efi_path, tmp_path / "t.img", build_id=fw.build_id)
    result = run_image(tmp_path / "t.img", board=board, timeout=300)
    assert result.ok, result.console[-2000:]
    assert result.status["thermal_test"]["gp_guard_hit"] == "1"   # a real #GP, resumed, no panic
    thermal = result.to_dict()["thermal"]   # what `dte run --json` prints
    assert thermal["state"] == "unavailable" and thermal["reason"] == "hypervisor_hides_sensors"
    assert thermal["decisions"] == 0
    assert "tokens" in result.status and "panic" not in result.status
