"""Small GGUF files for tests, written with gguf-py's GGUFWriter (an independent implementation)."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np


def write_gguf(path: Path, *, arch: str = "llama", n_tensors: int = 3, rows: int = 4, cols: int = 64,
               qtype: gguf.GGMLQuantizationType = gguf.GGMLQuantizationType.Q8_0, seed: int = 0,
               filler_floats: int = 0) -> Path:
    """A llama-style GGUF: F32 + `qtype` tensors, a little metadata, plus an optional big F32 tensor."""
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(2)
    w.add_embedding_length(cols)
    w.add_context_length(128)
    w.add_vocab_size(32)
    w.add_token_list([f"t{i}" for i in range(32)])
    for i in range(n_tensors):
        data = rng.standard_normal((rows, cols)).astype(np.float32)
        if i % 2 == 0:
            w.add_tensor(f"blk.{i}.weight", data)
        else:
            w.add_tensor(f"blk.{i}.weight", gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    if filler_floats:
        w.add_tensor("filler", rng.standard_normal(filler_floats).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
