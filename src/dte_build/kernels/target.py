"""llvmlite plumbing: parse + optimise the kernel IR, emit COFF/ELF objects, JIT for tests and benchmarks."""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass

import llvmlite.binding as llvm

from ..errors import DteError

COFF_TRIPLE = "x86_64-unknown-windows"


@functools.cache
def _init() -> None:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()


@dataclass(frozen=True)
class Target:
    """Where the code runs: triple, LLVM CPU name and feature string ("+avx2,+fma,...")."""

    triple: str
    cpu: str
    features: str

    @staticmethod
    def host() -> Target:
        _init()
        return Target(llvm.get_process_triple(), llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten())


def machine(target: Target) -> llvm.TargetMachine:
    _init()
    try:
        tgt = llvm.Target.from_triple(target.triple)
    except RuntimeError as exc:
        raise DteError(f"LLVM has no target for {target.triple}: {exc}") from None
    return tgt.create_target_machine(cpu=target.cpu, features=target.features, opt=3, reloc="pic",
                                     codemodel="default")


def compile_module(ir_text: str, tm: llvm.TargetMachine) -> llvm.ModuleRef:
    """Parse, verify and optimise (O3) the IR for the given target machine."""
    _init()
    try:
        mod = llvm.parse_assembly(ir_text)
        mod.verify()
    except RuntimeError as exc:
        raise DteError(f"generated kernel IR is invalid: {exc}", "this is a bug in dte_build.kernels") from None
    mod.triple = tm.triple
    mod.data_layout = str(tm.target_data)
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = False  # the kernels are vectorised by hand; keep their shape
    pto.slp_vectorization = False
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)
    return mod


def emit_object(ir_text: str, target: Target) -> bytes:
    tm = machine(target)
    return tm.emit_object(compile_module(ir_text, tm))


def emit_assembly(ir_text: str, target: Target) -> str:
    tm = machine(target)
    return tm.emit_assembly(compile_module(ir_text, tm))


class Jit:
    """The kernels JIT-compiled for this host; `function(symbol)` gives a ctypes callable with the C ABI."""

    SIGNATURE = ctypes.CFUNCTYPE(ctypes.c_float, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p)

    def __init__(self, ir_text: str, target: Target | None = None) -> None:
        target = target or Target.host()
        self.tm = machine(target)
        self.module = compile_module(ir_text, self.tm)
        self.engine = llvm.create_mcjit_compiler(self.module, self.tm)
        self.engine.finalize_object()

    def function(self, symbol: str) -> ctypes._CFuncPtr:
        address = self.engine.get_function_address(symbol)
        if not address:
            raise DteError(f"kernel {symbol} is not in the JIT module")
        return self.SIGNATURE(address)
