"""What a compiled kernel object really defines, read from its ELF symbol table with pyelftools (ELF spec, System V
ABI ch. 4 "Symbol Table"): each function symbol's name, size and section. `dte kernels list` shows it, and checks it
against KERNEL_SYMBOLS (the names firmware/engine/kernels.h declares)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from ..errors import DteError


@dataclass(frozen=True)
class ObjectSymbol:
    name: str
    size: int          # bytes of machine code (st_size)
    section: str       # the section holding it (.text, or .text.NAME with function sections)


def function_symbols(path: Path, prefix: str = "dte_k_") -> list[ObjectSymbol]:
    """Global function symbols of an ELF object whose names start with `prefix`, in symbol-table order."""
    found: list[ObjectSymbol] = []
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            sections = [s.name for s in elf.iter_sections()]
            for table in elf.iter_sections():
                if not isinstance(table, SymbolTableSection):
                    continue
                for sym in table.iter_symbols():
                    if (sym["st_info"]["type"] == "STT_FUNC" and sym["st_info"]["bind"] == "STB_GLOBAL"
                            and sym.name.startswith(prefix)):
                        index = sym["st_shndx"]
                        section = sections[index] if isinstance(index, int) and index < len(sections) else str(index)
                        found.append(ObjectSymbol(sym.name, int(sym["st_size"]), section))
    except (OSError, ValueError) as exc:
        raise DteError(f"cannot read kernel object {path}: {exc}") from None
    return found
