/* TPM 2.0 through the firmware's EFI_TCG2_PROTOCOL (TCG EFI Protocol Specification, Family 2.0, rev 00.13 §6),
 * before ExitBootServices: measure an event into a PCR (HashLogExtendEvent, which also logs it in the TCG event
 * log) and read a PCR's SHA-256 bank back (SubmitCommand with TPM2_PCR_Read, TPM 2.0 Part 3 §22.4). */
#ifndef DTE_BOOT_TPM_H
#define DTE_BOOT_TPM_H

#include <stdint.h>

#include "boot/efi.h"

#define DTE_TPM_PCR 12u            /* docs/identity.md: the PCR dte extends */
#define DTE_TPM_EV_IPL 0x0000000Du /* TCG PC Client PFP §10.4.1 EV_IPL: measurements by a boot application */

typedef struct dte_tpm dte_tpm;

/* The TCG2 protocol, or NULL when the platform has no TPM 2.0 (or the firmware no TCG2 driver). */
dte_tpm *tpm_open(efi_boot_services *bs);
/* Extend PCR `pcr` with SHA-256(data) (and the other active banks with their hashes) and log the event with
 * `description` as its event data. 0 or -1. */
int tpm_measure(dte_tpm *tpm, uint32_t pcr, const void *data, uint64_t size, const char *description);
/* The SHA-256 bank's value of PCR `pcr` (0..23). 0 or -1. */
int tpm_pcr_read_sha256(dte_tpm *tpm, uint32_t pcr, uint8_t out[32]);

#endif /* DTE_BOOT_TPM_H */
