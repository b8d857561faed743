/* Attestation (docs/identity.md, "Attestation"): before ExitBootServices, measure the firmware file as it sits on
 * the ESP, the weights (the manifest's SHA-256), the compiled-in persona hash and the platform; extend the TPM
 * (when there is one) with the persona and weights measurements; print `dte: attest ...` with the digest over the
 * canonical encoding. After the weights load, re-hash them in memory (`dte: attest_weights ...`). The same
 * report is the token protocol's ATTEST blob (attest_blob, a dte_proto_attest_fn). */
#ifndef DTE_BOOT_ATTEST_H
#define DTE_BOOT_ATTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "boot/appliance.h"
#include "boot/efi.h"
#include "boot/weights_manifest.h"
#include "engine/sampler.h"

/* Measure, extend, print `dte: persona ...` and `dte: attest ...`. Call once, before ExitBootServices, after
 * the weights manifest is read. Returns 0, or -1 when the firmware file cannot be read (it still prints what it
 * measured, with efi_sha256=unreadable). */
int attest_measure(efi_handle image, efi_system_table *st, const struct dte_boot_info *info,
                   const struct weights_manifest *man, const void *rsdp);

/* After the weights are in memory: SHA-256 of the GGUF the `size` loaded bytes hold in `layout` (DTE_LAYOUT_*:
 * laid-out tensors are unpacked group by group as they are hashed, so the hash is the GGUF file's) against the
 * manifest's, printed as `dte: attest_weights sha256=... match=1|0` (skipped with `resident=partial` when the
 * model streams). Returns 0 when they match (or cannot be checked), -1 when they differ. */
int attest_weights_loaded(const uint8_t *data, uint64_t size, uint64_t model_size, uint32_t layout);

/* The persona's identity stage on a sampler (engine/identity.h), with the compiled-in hash and strength;
 * nothing when DTE_IDENTITY_STRENGTH is 0. */
void attest_attach_identity(dte_sampler *sampler);

/* dte_proto_attest_fn (net/proto.h): the canonical report, the digest, the PCR and SHA-256(digest || nonce) as
 * text lines into `out`; returns the size, 0 before attest_measure ran or when `cap` is too small. */
size_t attest_blob(void *ctx, const uint8_t *nonce, size_t nonce_size, uint8_t *out, size_t cap);

#endif /* DTE_BOOT_ATTEST_H */
