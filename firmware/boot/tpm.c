/* TPM 2.0 measured boot through EFI_TCG2_PROTOCOL (see tpm.h). */
#include "boot/tpm.h"

/* TCG EFI Protocol Specification §6.1: EFI_TCG2_PROTOCOL_GUID. */
#define EFI_TCG2_PROTOCOL_GUID {0x607f766c, 0x7455, 0x42be, {0x93, 0x0b, 0xe4, 0xd7, 0x6d, 0xb2, 0x72, 0x0f}}

/* §6.6 EFI_TCG2_EVENT (packed): u32 Size; header { u32 HeaderSize; u16 HeaderVersion; u32 PCRIndex;
 * u32 EventType }; u8 Event[]. Size counts everything; HeaderSize is the header's 14 bytes. */
#define TCG2_EVENT_HEADER_BYTES 14u
#define TCG2_EVENT_HEADER_VERSION 1u
#define TCG2_EVENT_MAX_DATA 64u

/* §6.1 EFI_TCG2_PROTOCOL: only the slots we call are typed. */
struct dte_tpm {
    void *get_capability;
    void *get_event_log;
    efi_status(EFIAPI *hash_log_extend_event)(dte_tpm *self, uint64_t flags, uint64_t data_to_hash,
                                              uint64_t data_to_hash_len, void *event);
    efi_status(EFIAPI *submit_command)(dte_tpm *self, uint32_t in_size, const uint8_t *in, uint32_t out_size,
                                       uint8_t *out);
};

/* TPM 2.0 Part 2: TPM_ST_NO_SESSIONS 0x8001 (§6.9), TPM_CC_PCR_Read 0x17E (§6.5.2), TPM_ALG_SHA256 0x000B (§6.3),
 * PCR_SELECT_MAX 3 bytes for 24 PCRs. */
#define TPM_ST_NO_SESSIONS 0x8001u
#define TPM_CC_PCR_READ 0x0000017Eu
#define TPM_ALG_SHA256 0x000Bu

dte_tpm *tpm_open(efi_boot_services *bs)
{
    static const efi_guid guid = EFI_TCG2_PROTOCOL_GUID;
    void *tpm = NULL;
    if (EFI_IS_ERROR(bs->locate_protocol(&guid, NULL, &tpm))) {
        return NULL;
    }
    return tpm;
}

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void put_be(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) {
        p[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
    }
}

static uint32_t get_be(const uint8_t *p, int bytes)
{
    uint32_t v = 0;
    for (int i = 0; i < bytes; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

int tpm_measure(dte_tpm *tpm, uint32_t pcr, const void *data, uint64_t size, const char *description)
{
    uint8_t event[4 + TCG2_EVENT_HEADER_BYTES + TCG2_EVENT_MAX_DATA];
    uint32_t len = 0;
    while (description[len] && len < TCG2_EVENT_MAX_DATA) {
        event[4 + TCG2_EVENT_HEADER_BYTES + len] = (uint8_t)description[len];
        len++;
    }
    put_le(event, 4 + TCG2_EVENT_HEADER_BYTES + len, 4);
    put_le(event + 4, TCG2_EVENT_HEADER_BYTES, 4);
    put_le(event + 8, TCG2_EVENT_HEADER_VERSION, 2);
    put_le(event + 10, pcr, 4);
    put_le(event + 14, DTE_TPM_EV_IPL, 4);
    efi_status st = tpm->hash_log_extend_event(tpm, 0, (uint64_t)(uintptr_t)data, size, event);
    return EFI_IS_ERROR(st) ? -1 : 0;
}

int tpm_pcr_read_sha256(dte_tpm *tpm, uint32_t pcr, uint8_t out[32])
{
    uint8_t cmd[20], resp[64];
    put_be(cmd, TPM_ST_NO_SESSIONS, 2);
    put_be(cmd + 2, sizeof cmd, 4);
    put_be(cmd + 6, TPM_CC_PCR_READ, 4);
    put_be(cmd + 10, 1, 4);                 /* TPML_PCR_SELECTION.count */
    put_be(cmd + 14, TPM_ALG_SHA256, 2);    /* TPMS_PCR_SELECTION.hash */
    cmd[16] = 3;                            /* sizeofSelect */
    cmd[17] = cmd[18] = cmd[19] = 0;
    cmd[17 + pcr / 8] = (uint8_t)(1u << (pcr % 8));
    for (unsigned i = 0; i < sizeof resp; i++) {
        resp[i] = 0;
    }
    if (pcr > 23 || EFI_IS_ERROR(tpm->submit_command(tpm, sizeof cmd, cmd, sizeof resp, resp))) {
        return -1;
    }
    /* Response: tag u16, size u32, rc u32, pcrUpdateCounter u32, TPML_PCR_SELECTION (4 + 6), TPML_DIGEST count
     * u32 @24, TPM2B_DIGEST size u16 @28, digest @30. */
    if (get_be(resp + 6, 4) != 0 || get_be(resp + 24, 4) != 1 || get_be(resp + 28, 2) != 32) {
        return -1;
    }
    for (int i = 0; i < 32; i++) {
        out[i] = resp[30 + i];
    }
    return 0;
}
