#!/usr/bin/env python3
"""Export the dte-tiny checkpoint to GGUF (gguf-py) and make llama.cpp-quantized variants.

Subcommands:

  export    checkpoint + SentencePiece model -> models/dte-tiny-f16.gguf and models/dte-tiny-q8_0.gguf, written the
            way llama.cpp's convert_hf_to_gguf.py writes a llama SentencePiece model (same keys, same tensor names,
            1-D tensors in F32, q/k rows permuted from the HF half-split RoPE layout to ggml's adjacent pairs).
  quantize  models/dte-tiny-f16.gguf -> Q4_0, Q4_K_M, Q6_K, ... with llama.cpp's own quantizer
            (llama-cpp-python's llama_model_quantize).
  verify    llama.cpp's last-position logits for a few prompts vs the torch checkpoint's (needs llama-cpp-python).

Usage:
  python3 scripts/export_gguf.py export [--ckpt build/dte-tiny/checkpoint.pt]
  python3 scripts/export_gguf.py quantize
  python3 scripts/export_gguf.py verify
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_model  # noqa: E402  (same directory)

REPO = train_model.REPO
MODELS = REPO / "models"
NAME = "dte-tiny"
WORK = train_model.DEFAULT_OUT

# llama.cpp quantization presets made from the F16 file: file suffix -> LLAMA_FTYPE_* name in llama_cpp.
LLAMACPP_TYPES = {
    "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
    "q4_1": "LLAMA_FTYPE_MOSTLY_Q4_1",
    "q5_0": "LLAMA_FTYPE_MOSTLY_Q5_0",
    "q5_1": "LLAMA_FTYPE_MOSTLY_Q5_1",
    "q2_k": "LLAMA_FTYPE_MOSTLY_Q2_K",
    "q3_k_m": "LLAMA_FTYPE_MOSTLY_Q3_K_M",
    "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
}

# HF-style parameter name -> GGUF tensor name (llama.cpp's gguf-py tensor_mapping for LLaMA).
LAYER_TENSORS = {
    "attn_norm.weight": "attn_norm",
    "q_proj.weight": "attn_q",
    "k_proj.weight": "attn_k",
    "v_proj.weight": "attn_v",
    "o_proj.weight": "attn_output",
    "ffn_norm.weight": "ffn_norm",
    "gate_proj.weight": "ffn_gate",
    "up_proj.weight": "ffn_up",
    "down_proj.weight": "ffn_down",
}


def model_path(suffix: str) -> Path:
    return MODELS / f"{NAME}-{suffix}.gguf"


def permute_rope(w: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf.py LlamaModel.permute: rows (head, half, i) -> (head, i, half).

    HF rotates element i with i + head_dim/2; ggml's normal RoPE rotates elements 2i and 2i+1.
    """
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_tensors(state: dict, cfg: train_model.ModelConfig) -> list[tuple[str, np.ndarray]]:
    """(GGUF name, float32 numpy array) in the order convert_hf_to_gguf.py writes them."""
    out: list[tuple[str, np.ndarray]] = [("token_embd.weight", state["embed.weight"])]
    for i in range(cfg.n_layer):
        for hf, gg in LAYER_TENSORS.items():
            w = state[f"blocks.{i}.{hf}"]
            if hf == "q_proj.weight":
                w = permute_rope(w, cfg.n_head)
            elif hf == "k_proj.weight":
                w = permute_rope(w, cfg.n_kv_head)
            out.append((f"blk.{i}.{gg}.weight", w))
    out.append(("output_norm.weight", state["norm.weight"]))
    out.append(("output.weight", state["head.weight"]))
    return out


def sentencepiece_vocab(tokenizer: Path) -> tuple[list[bytes], list[float], list[int]]:
    """convert_hf_to_gguf.py _create_vocab_sentencepiece: pieces, scores and token types."""
    import gguf
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(tokenizer))
    tokens, scores, types = [], [], []
    for i in range(sp.vocab_size()):
        t = gguf.TokenType.NORMAL
        if sp.IsUnknown(i):
            t = gguf.TokenType.UNKNOWN
        elif sp.IsControl(i):
            t = gguf.TokenType.CONTROL
        elif sp.IsUnused(i):
            t = gguf.TokenType.UNUSED
        elif sp.IsByte(i):
            t = gguf.TokenType.BYTE
        tokens.append(sp.IdToPiece(i).encode("utf-8"))
        scores.append(float(sp.GetScore(i)))
        types.append(int(t))
    return tokens, scores, types


def write_gguf(path: Path, state: dict, cfg: train_model.ModelConfig, tokenizer: Path, qtype: str) -> None:
    """Write one GGUF; qtype is "f16" or "q8_0" (2-D tensors; 1-D tensors stay F32 as in llama.cpp)."""
    import gguf

    ftype = {"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[qtype]
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(NAME)
    w.add_context_length(cfg.context)
    w.add_embedding_length(cfg.dim)
    w.add_block_count(cfg.n_layer)
    w.add_feed_forward_length(cfg.ffn_dim)
    w.add_head_count(cfg.n_head)
    w.add_head_count_kv(cfg.n_kv_head)
    w.add_rope_freq_base(cfg.rope_theta)
    w.add_layer_norm_rms_eps(cfg.rms_eps)
    w.add_file_type(ftype)
    w.add_vocab_size(cfg.vocab_size)
    w.add_rope_dimension_count(cfg.head_dim)
    tokens, scores, types = sentencepiece_vocab(tokenizer)
    if len(tokens) != cfg.vocab_size:
        sys.exit(f"tokenizer has {len(tokens)} pieces, model expects {cfg.vocab_size}")
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for name, arr in gguf_tensors(state, cfg):
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if arr.ndim == 1:
            w.add_tensor(name, arr)
        elif qtype == "f16":
            w.add_tensor(name, arr.astype(np.float16))
        else:
            q = gguf.GGMLQuantizationType.Q8_0
            w.add_tensor(name, gguf.quants.quantize(arr, q), raw_dtype=q)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{path.relative_to(REPO)}: {path.stat().st_size} bytes", file=sys.stderr)


def export(ckpt: Path, tokenizer: Path) -> None:
    _, cfg, blob = train_model.load_checkpoint(ckpt)
    state = {k: v.float().numpy() for k, v in blob["state_dict"].items()}
    MODELS.mkdir(exist_ok=True)
    for qtype in ("f16", "q8_0"):
        write_gguf(model_path(qtype), state, cfg, tokenizer, qtype)


def quantize(types: list[str]) -> None:
    import llama_cpp

    import llamacpp_ref

    llamacpp_ref.quiet()

    src = model_path("f16")
    for suffix in types:
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = getattr(llama_cpp, LLAMACPP_TYPES[suffix])
        params.nthread = 2
        dst = model_path(suffix)
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params)
        if rc != 0:
            sys.exit(f"llama_model_quantize {suffix} failed: {rc}")
        print(f"{dst.relative_to(REPO)}: {dst.stat().st_size} bytes", file=sys.stderr)


def verify(ckpt: Path, tokenizer: Path, files: list[str]) -> None:
    """Compare llama.cpp's logits with the torch model's for each prompt (same token ids)."""
    import sentencepiece as spm
    import torch

    import llamacpp_ref

    model, _, _ = train_model.load_checkpoint(ckpt)
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer))
    prompts = ["Hello, I am", "The quick brown fox jumps over the lazy dog.", "A man"]
    for suffix in files:
        with llamacpp_ref.LlamaCpp(model_path(suffix)) as lc:
            for p in prompts:
                ids = lc.tokenize(p)
                want = [sp.bos_id()] + sp.encode(p)
                if ids != want:
                    sys.exit(f"tokenizer mismatch for {p!r}: llama.cpp {ids} sentencepiece {want}")
                ref = model(torch.tensor([ids]))[0, -1].detach().numpy()
                got = lc.prompt_logits(ids)
                err = float(np.max(np.abs(got - ref)))
                print(f"{suffix:7s} {p[:30]!r:34s} max|dlogit| {err:.4f} (logit range {np.ptp(ref):.1f}) "
                      f"argmax torch {int(ref.argmax())} llama.cpp {int(got.argmax())}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["export", "quantize", "verify"])
    ap.add_argument("--ckpt", type=Path, default=WORK / "checkpoint.pt")
    ap.add_argument("--tokenizer", type=Path, default=WORK / "tokenizer.model")
    ap.add_argument("--types", nargs="*", default=list(LLAMACPP_TYPES), help="quantize: file suffixes to make")
    ap.add_argument("--files", nargs="*", default=["f16", "q8_0"], help="verify: file suffixes to check")
    args = ap.parse_args()
    if args.step == "export":
        export(args.ckpt, args.tokenizer)
    elif args.step == "quantize":
        quantize(args.types)
    else:
        verify(args.ckpt, args.tokenizer, args.files)


if __name__ == "__main__":
    main()
