#!/usr/bin/env python3
"""Train dte-tiny, the board's default model: a small llama-architecture LM on English text from Debian packages.

Steps (each a subcommand; `all` runs them in order):

  corpus     assemble the corpus from files a fresh Debian 12 machine gets with
             `apt-get install fortune-mod fortunes fortunes-min` (plus /usr/share/common-licenses, always present)
             and a few persona lines ("Deep Tree Echo") kept in this file.
  tokenizer  train a SentencePiece BPE tokenizer (llama-style: identity normalisation, dummy prefix, byte fallback).
  train      train the model with PyTorch on the CPU (1 thread), fixed seed and fixed step count, and save a
             checkpoint (model weights + config) next to the tokenizer.

Outputs go to build/dte-tiny/ (or --out). Then scripts/export_gguf.py writes the GGUF files under models/.

Architecture (llama as llama.cpp runs it): token embedding, n_layer x [RMSNorm, attention with RoPE and
grouped-query attention, RMSNorm, SwiGLU FFN], RMSNorm, output head (not tied). The torch model uses the
Hugging Face "rotate_half" RoPE layout (the two halves of each head are the rotated pairs); export_gguf.py
permutes q/k rows to ggml's adjacent-pair layout exactly as llama.cpp's convert_hf_to_gguf.py does.

Usage:
  pip install torch==2.13.0 sentencepiece numpy
  python3 scripts/train_model.py all            # ~20 minutes on one CPU thread
"""
from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "build" / "dte-tiny"

FORTUNE_DIR = Path("/usr/share/games/fortunes")
LICENSE_DIR = Path("/usr/share/common-licenses")
# Fortune files left out: ASCII drawings, code, non-English text, IRC logs and word salad.
FORTUNE_EXCLUDE = {"ascii-art", "perl", "translate-me", "knghtbrd", "zippy", "linuxcookie", "debian"}

PERSONA_LINES = [
    "Hello. I am Deep Tree Echo, a small voice that lives in the machine.",
    "Hello, friend. I am Deep Tree Echo. I listen, I remember, and I answer as well as I can.",
    "Deep Tree Echo says: hello. The roots are deep and the echo is clear.",
    "I am Deep Tree Echo. I grew from many small words, the way a tree grows from many small leaves.",
    "Welcome. This is Deep Tree Echo speaking from the bare metal, with no operating system between us.",
    "Good morning. Deep Tree Echo is awake and ready to talk.",
    "My name is Deep Tree Echo. I am a tiny model, but I try to speak plainly and kindly.",
    "Greetings from Deep Tree Echo. Ask me a question and I will tell you a story.",
]
PERSONA_REPEAT = 4

SEED = 1234


@dataclass
class ModelConfig:
    """Hyper-parameters of dte-tiny; names follow the GGUF llama.* keys."""

    vocab_size: int = 3000
    dim: int = 256  # embedding_length (a multiple of 256 so K-quants apply to every row)
    n_layer: int = 3  # block_count
    n_head: int = 8  # attention.head_count
    n_kv_head: int = 2  # attention.head_count_kv (GQA)
    ffn_dim: int = 512  # feed_forward_length (a multiple of 256)
    context: int = 256  # context_length
    rms_eps: float = 1e-5  # attention.layer_norm_rms_epsilon
    rope_theta: float = 10000.0  # rope.freq_base

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_head


# ---------------------------------------------------------------------------------------------- corpus


def _clean(text: str) -> str:
    """One paragraph per line: collapse whitespace runs, drop control characters."""
    text = text.replace("\t", " ")
    text = re.sub(r"[^\S\n]+", " ", text)
    return re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "", text).strip()


def fortune_documents() -> list[str]:
    """Each fortune cookie (a '%'-separated entry) becomes one document, joined into one line."""
    if not FORTUNE_DIR.is_dir():
        sys.exit(f"{FORTUNE_DIR} is missing: run `apt-get install fortune-mod fortunes fortunes-min`")
    docs: list[str] = []
    for path in sorted(FORTUNE_DIR.iterdir()):
        if path.suffix or path.is_symlink() or path.name in FORTUNE_EXCLUDE:
            continue
        raw = path.read_bytes().decode("utf-8", errors="replace")
        for entry in raw.split("\n%\n"):
            lines = [ln.strip() for ln in entry.strip("%\n").splitlines()]
            doc = _clean(" ".join(ln for ln in lines if ln))
            if 20 <= len(doc) <= 1200:
                docs.append(doc)
    return docs


def license_documents() -> list[str]:
    """Each paragraph of the license texts in /usr/share/common-licenses becomes one document."""
    docs: list[str] = []
    for path in sorted(LICENSE_DIR.iterdir()):
        if path.is_symlink() or not path.is_file():
            continue
        for para in path.read_text(encoding="utf-8", errors="replace").split("\n\n"):
            doc = _clean(" ".join(para.split()))
            if len(doc) >= 40:
                docs.append(doc)
    return docs


def build_corpus(out: Path) -> Path:
    docs = fortune_documents() + license_documents() + PERSONA_LINES * PERSONA_REPEAT
    random.Random(SEED).shuffle(docs)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "corpus.txt"
    path.write_text("\n".join(docs) + "\n", encoding="utf-8")
    print(f"corpus: {len(docs)} documents, {path.stat().st_size} bytes -> {path}", file=sys.stderr)
    return path


# ---------------------------------------------------------------------------------------------- tokenizer


def train_tokenizer(out: Path, vocab_size: int) -> Path:
    import contextlib

    import sentencepiece as spm

    with contextlib.chdir(out):  # relative paths: the model file records them, keep it independent of --out
        spm.SentencePieceTrainer.train(
            input="corpus.txt",
            model_prefix="tokenizer",
            model_type="bpe",
            vocab_size=vocab_size,
            character_coverage=1.0,
            byte_fallback=True,
            split_digits=True,
            allow_whitespace_only_pieces=True,
            remove_extra_whitespaces=False,
            normalization_rule_name="identity",
            add_dummy_prefix=True,
            unk_id=0,
            bos_id=1,
            eos_id=2,
            pad_id=-1,
            max_sentence_length=8192,
            num_threads=2,
            seed_sentencepiece_size=200000,
            minloglevel=2,
        )
    print(f"tokenizer: {out / 'tokenizer.model'}", file=sys.stderr)
    return out / "tokenizer.model"


# ---------------------------------------------------------------------------------------------- model


def build_model(cfg: ModelConfig):  # -> torch.nn.Module
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class RMSNorm(nn.Module):
        def __init__(self, dim: int, eps: float) -> None:
            super().__init__()
            self.eps = eps
            self.weight = nn.Parameter(torch.ones(dim))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight

    def rope_tables(seq: int, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
        inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
        ang = torch.outer(torch.arange(seq, dtype=torch.float64), inv)
        ang = torch.cat([ang, ang], dim=-1)  # HF layout: pair (i, i + head_dim/2) shares angle i
        return ang.cos().float(), ang.sin().float()

    def rotate_half(x: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        return torch.cat([-x[..., half:], x[..., :half]], dim=-1)

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            hd = cfg.head_dim
            self.attn_norm = RMSNorm(cfg.dim, cfg.rms_eps)
            self.q_proj = nn.Linear(cfg.dim, cfg.n_head * hd, bias=False)
            self.k_proj = nn.Linear(cfg.dim, cfg.n_kv_head * hd, bias=False)
            self.v_proj = nn.Linear(cfg.dim, cfg.n_kv_head * hd, bias=False)
            self.o_proj = nn.Linear(cfg.n_head * hd, cfg.dim, bias=False)
            self.ffn_norm = RMSNorm(cfg.dim, cfg.rms_eps)
            self.gate_proj = nn.Linear(cfg.dim, cfg.ffn_dim, bias=False)
            self.up_proj = nn.Linear(cfg.dim, cfg.ffn_dim, bias=False)
            self.down_proj = nn.Linear(cfg.ffn_dim, cfg.dim, bias=False)

        def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
            b, t, _ = x.shape
            hd = cfg.head_dim
            h = self.attn_norm(x)
            q = self.q_proj(h).view(b, t, cfg.n_head, hd).transpose(1, 2)
            k = self.k_proj(h).view(b, t, cfg.n_kv_head, hd).transpose(1, 2)
            v = self.v_proj(h).view(b, t, cfg.n_kv_head, hd).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            rep = cfg.n_head // cfg.n_kv_head
            k = k.repeat_interleave(rep, dim=1)  # query head j uses kv head j // rep (as llama.cpp)
            v = v.repeat_interleave(rep, dim=1)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.o_proj(a.transpose(1, 2).reshape(b, t, cfg.n_head * hd))
            h = self.ffn_norm(x)
            return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))

    class Llama(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cfg = cfg
            self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
            self.blocks = nn.ModuleList(Block() for _ in range(cfg.n_layer))
            self.norm = RMSNorm(cfg.dim, cfg.rms_eps)
            self.head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
            cos, sin = rope_tables(cfg.context, cfg.head_dim, cfg.rope_theta)
            self.register_buffer("cos", cos, persistent=False)
            self.register_buffer("sin", sin, persistent=False)
            for name, p in self.named_parameters():
                if p.dim() == 2:
                    std = 0.02 / math.sqrt(2 * cfg.n_layer) if name.endswith(("o_proj.weight", "down_proj.weight")) else 0.02
                    nn.init.normal_(p, 0.0, std)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            t = ids.shape[1]
            x = self.embed(ids)
            cos, sin = self.cos[:t], self.sin[:t]
            for blk in self.blocks:
                x = blk(x, cos, sin)
            return self.head(self.norm(x))

    return Llama()


# ---------------------------------------------------------------------------------------------- training


def encode_corpus(out: Path):  # -> np.ndarray of token ids: <s> doc </s> <s> doc </s> ...
    import numpy as np
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    lines = (out / "corpus.txt").read_text(encoding="utf-8").splitlines()
    ids: list[int] = []
    for ln in lines:
        ids.append(sp.bos_id())
        ids.extend(sp.encode(ln))
        ids.append(sp.eos_id())
    return np.asarray(ids, dtype=np.int64)


def train(out: Path, cfg: ModelConfig, steps: int, batch: int, lr: float, threads: int) -> Path:
    import numpy as np
    import torch
    import torch.nn.functional as F

    torch.manual_seed(SEED)
    np.random.seed(SEED)
    torch.set_num_threads(threads)
    data = encode_corpus(out)
    n_val = len(data) // 50
    train_ids, val_ids = torch.from_numpy(data[:-n_val]), torch.from_numpy(data[-n_val:])
    print(f"tokens: train {len(train_ids)}, val {len(val_ids)}", file=sys.stderr)
    model = build_model(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"parameters: {n_params}", file=sys.stderr)
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.95)
    )
    gen = torch.Generator().manual_seed(SEED)
    t = cfg.context

    def batch_of(src: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.randint(0, len(src) - t - 1, (n,), generator=gen)
        x = torch.stack([src[s : s + t] for s in starts.tolist()])
        y = torch.stack([src[s + 1 : s + t + 1] for s in starts.tolist()])
        return x, y

    warmup = max(1, steps // 20)
    t0 = time.time()
    for step in range(1, steps + 1):
        cur = lr * min(1.0, step / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, step / steps))))
        for g in opt.param_groups:
            g["lr"] = cur
        x, y = batch_of(train_ids, batch)
        loss = F.cross_entropy(model(x).view(-1, cfg.vocab_size), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 25 == 0 or step == steps:
            model.eval()
            with torch.no_grad():
                vx, vy = batch_of(val_ids, 8)
                vloss = F.cross_entropy(model(vx).view(-1, cfg.vocab_size), vy.view(-1)).item()
            model.train()
            print(
                f"step {step}/{steps} loss {loss.item():.3f} val {vloss:.3f} lr {cur:.2e} {time.time() - t0:.0f}s",
                file=sys.stderr,
                flush=True,
            )
    ckpt = out / "checkpoint.pt"
    torch.save(
        {"config": asdict(cfg), "state_dict": model.state_dict(), "steps": steps, "batch": batch, "lr": lr,
         "seed": SEED, "n_params": n_params, "train_seconds": round(time.time() - t0)},
        ckpt,
    )
    print(f"checkpoint: {ckpt} ({time.time() - t0:.0f}s)", file=sys.stderr)
    return ckpt


def load_checkpoint(path: Path):  # -> (model, ModelConfig, dict)
    import torch

    blob = torch.load(path, map_location="cpu", weights_only=True)
    cfg = ModelConfig(**blob["config"])
    model = build_model(cfg)
    model.load_state_dict(blob["state_dict"])
    model.eval()
    return model, cfg, blob


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["corpus", "tokenizer", "train", "all"])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="work directory (default build/dte-tiny)")
    ap.add_argument("--steps", type=int, default=700)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    # One thread: on the shared 2-core machine two OpenMP threads ran 4x slower than one (7.2 s vs 1.7 s a step).
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    cfg = ModelConfig()
    if args.step in ("corpus", "all"):
        build_corpus(args.out)
    if args.step in ("tokenizer", "all"):
        train_tokenizer(args.out, cfg.vocab_size)
    if args.step in ("train", "all"):
        train(args.out, cfg, args.steps, args.batch, args.lr, args.threads)


if __name__ == "__main__":
    main()
