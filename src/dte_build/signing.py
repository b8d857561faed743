"""UEFI Secure Boot signing of BOOTX64.EFI (Authenticode, PKCS#7) with Debian's sbsigntool, and inspection.

`sign_efi` runs `sbsign`. sbsign adds a PKCS#9 signingTime attribute taken from the clock, so two signatures of the
same file differ; when `faketime` (libfaketime) is installed the clock is frozen at SOURCE_DATE_EPOCH and the
signed file is byte-identical for the same inputs (RSA PKCS#1 v1.5 signatures are deterministic). Without it the
signed file is not reproducible (the unsigned firmware still is) and a warning says so.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .console import warn
from .errors import DteError

SBSIGN_HINT = "install it: apt-get install sbsigntool"
PASSPHRASE_ENV = "DTE_SIGN_KEY_PASS"


@dataclass(frozen=True)
class SignatureInfo:
    digest_algorithm: str
    signer_issuer: str
    signer_serial: str
    subjects: tuple[str, ...]     # of every certificate carried in the signature
    lief_verification: str         # lief's check of the Authenticode digest and the PKCS#7 signature

    def to_dict(self) -> dict[str, object]:
        return {"digest_algorithm": self.digest_algorithm, "signer_issuer": self.signer_issuer,
                "signer_serial": self.signer_serial, "subjects": list(self.subjects),
                "verification": self.lief_verification}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise DteError(f"{name} not found (needed to sign or check Secure Boot signatures)", SBSIGN_HINT)
    return path


def _plain_key(key: Path, passphrase: str | None, tmp: Path) -> Path:
    """`key` itself when unencrypted, else a decrypted copy (mode 0600) in `tmp`: sbsign would prompt on a tty."""
    try:
        text = key.read_bytes()
    except OSError as exc:
        raise DteError(f"signing key {key}: {exc.strerror}", "pass a PEM private key with --sign-key") from None
    if b"ENCRYPTED" not in text:
        return key
    if passphrase is None:
        raise DteError(f"signing key {key} is encrypted and no passphrase was given",
                       f"set ${PASSPHRASE_ENV} (or --sign-key-pass) to its passphrase")
    out = tmp / "key.pem"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    result = subprocess.run(["openssl", "pkey", "-in", str(key), "-passin", "env:DTE_KEY_PASS", "-out", str(out)],
                            capture_output=True, text=True, check=False,
                            env={**os.environ, "DTE_KEY_PASS": passphrase})
    if result.returncode != 0:
        raise DteError(f"cannot decrypt signing key {key} (wrong passphrase?)", f"check ${PASSPHRASE_ENV}")
    return out


def _frozen_clock(source_date_epoch: int) -> list[str]:
    """A `faketime` prefix freezing the clock at SOURCE_DATE_EPOCH, or [] (with a warning) when not installed."""
    faketime = shutil.which("faketime")
    if faketime is None:
        warn("faketime not installed: the signature carries the current time, so the signed image is not "
             "reproducible (apt-get install faketime)")
        return []
    stamp = dt.datetime.fromtimestamp(source_date_epoch, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return [faketime, "-f", stamp]


def sign_efi(efi: Path, key: Path, cert: Path, out: Path, *, passphrase: str | None = None,
             source_date_epoch: int = 0) -> Path:
    """Sign `efi` with `key`/`cert` (PEM) into `out` (atomically) and check the result with sbverify.

    `passphrase`: for an encrypted key (default $DTE_SIGN_KEY_PASS).
    """
    sbsign = _tool("sbsign")
    efi, key, cert, out = Path(efi), Path(key), Path(cert), Path(out)
    if not cert.is_file():
        raise DteError(f"signing certificate {cert} does not exist", "pass a PEM certificate with --sign-cert")
    passphrase = passphrase if passphrase is not None else os.environ.get(PASSPHRASE_ENV)
    with tempfile.TemporaryDirectory(prefix="dte-sign-") as tmp:
        plain = _plain_key(key, passphrase, Path(tmp))
        signed = Path(tmp) / "signed.efi"
        cmd = [*_frozen_clock(source_date_epoch), sbsign, "--key", str(plain), "--cert", str(cert),
               "--output", str(signed), str(efi)]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False, env={**os.environ, "TZ": "UTC"})
        if result.returncode != 0 or not signed.is_file():
            detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise DteError(f"sbsign failed: {detail}", "check that --sign-key and --sign-cert are a matching pair")
        if not verify_signature(signed, cert):
            raise DteError("sbverify rejects the freshly signed firmware", "check the key and certificate")
        tmp_out = out.with_name(f".{out.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
        shutil.copyfile(signed, tmp_out)
        tmp_out.replace(out)
    return out


def verify_signature(efi: Path, cert: Path) -> bool:
    """True when `efi` carries a valid Authenticode signature by `cert` (sbverify --cert)."""
    result = subprocess.run([_tool("sbverify"), "--cert", str(cert), str(efi)], capture_output=True, text=True,
                            check=False)
    return result.returncode == 0


def signature_info(efi: Path | bytes) -> SignatureInfo | None:
    """The PE's first Authenticode signature as lief reads it; None when the file is unsigned."""
    import lief

    pe = lief.PE.parse(list(efi) if isinstance(efi, bytes) else str(efi))
    if pe is None:
        raise DteError("not a PE file: cannot read its signature")
    if not pe.has_signatures:
        return None
    sig = pe.signatures[0]
    signer = sig.signers[0]
    return SignatureInfo(
        digest_algorithm=str(sig.digest_algorithm).rsplit(".", 1)[-1],
        signer_issuer=str(signer.issuer),
        signer_serial=bytes(signer.serial_number).hex(),
        subjects=tuple(str(c.subject) for c in sig.certificates),
        lief_verification=str(pe.verify_signature()).rsplit(".", 1)[-1],
    )
