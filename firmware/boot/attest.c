/* Attestation and measured boot (see attest.h; formats in docs/identity.md). */
#include "boot/attest.h"

#include "boot/esp_file.h"
#include "boot/io.h"
#include "boot/status.h"
#include "boot/tpm.h"
#include "drivers/acpi.h"
#include "drivers/madt.h"
#include "dte_config.h"
#include "engine/identity.h"
#include "engine/layout.h"
#include "lib/fmt.h"
#include "lib/sha256.h"
#include "runtime/platform.h"

#define ATTEST_FORMAT "dte-attest/1"
#define FIRMWARE_FILE u"\\EFI\\BOOT\\BOOTX64.EFI"
#define READ_CHUNK (64u * 1024u)

struct attestation {
    bool measured, efi_ok, tpm;
    uint8_t efi[32], weights[32], digest[32], pcr[32];
    char platform[128];
    char canonical[512];   /* the digest's input (docs/identity.md "Canonical encoding") */
    uint64_t canonical_len;
};

static struct attestation report;
static const uint8_t persona_sha256[32] = DTE_PERSONA_SHA256_BYTES;

static void hex(char *out, const uint8_t *bytes, int n)
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

/* SHA-256 of \EFI\BOOT\BOOTX64.EFI on the volume this image was loaded from (UEFI 2.10 §9.1, §13.4, §13.5). */
static int hash_firmware_file(efi_handle image, efi_boot_services *bs, uint8_t out[32])
{
    static uint8_t chunk[READ_CHUNK];
    efi_file *file = NULL;
    efi_status st;
    if (esp_file_open(image, bs, FIRMWARE_FILE, &file, &st) != ESP_FILE_OK) {
        return -1;
    }
    dte_sha256_ctx ctx;
    dte_sha256_init(&ctx);
    int rc = 0;
    for (;;) {
        efi_uintn n = sizeof chunk;
        if (EFI_IS_ERROR(file->read(file, &n, chunk))) {
            rc = -1;
            break;
        }
        if (n == 0) {
            break;
        }
        dte_sha256_update(&ctx, chunk, n);
    }
    file->close(file);
    dte_sha256_final(&ctx, out);
    return rc;
}

/* Processors the MADT lists (ACPI 6.5 §5.2.12); 0 when there is no MADT. */
static int count_cores(const void *rsdp)
{
    const void *madt = rsdp ? acpi_find_table(rsdp, "APIC") : NULL;
    struct madt_cpu one[1];
    struct madt_info info = {0};
    if (!madt || madt_parse(madt, one, 1, &info) < 0) {
        return 0;
    }
    return info.listed;
}

static void describe_platform(const struct dte_boot_info *info, const void *rsdp)
{
    uint32_t signature = cpu_cpuid(1, 0).eax;   /* CPUID.01H:EAX: stepping, model, family (+ extended) */
    dte_fmt(report.platform, sizeof report.platform, "cpuid:0x%x,cores:%d,ram_mib:%llu,tsc:%llu", signature,
            count_cores(rsdp), (unsigned long long)(info->usable_bytes >> 20), (unsigned long long)cpu_rdtsc());
}

/* Canonical encoding: "dte-attest/1\n" then efi_sha256, weights_sha256, persona_sha256, platform as "key=value\n"
 * lines in that order, lowercase hex; digest = SHA-256 of those bytes. */
static void compute_digest(void)
{
    char efi[65], weights[65], persona[65];
    hex(efi, report.efi, 32);
    hex(weights, report.weights, 32);
    hex(persona, persona_sha256, 32);
    report.canonical_len = dte_fmt(report.canonical, sizeof report.canonical,
                                   ATTEST_FORMAT "\nefi_sha256=%s\nweights_sha256=%s\npersona_sha256=%s\nplatform=%s\n",
                                   report.efi_ok ? efi : "unreadable", weights, persona, report.platform);
    dte_sha256(report.canonical, report.canonical_len, report.digest);
}

/* Measured boot: PCR 12 <- persona hash, then the weights hash (each event's digest is SHA-256 of the 32 bytes). */
static void measure_into_tpm(efi_boot_services *bs)
{
    dte_tpm *tpm = tpm_open(bs);
    if (!tpm) {
        dte_status("tpm present=0 text=\"no TPM 2.0 (EFI_TCG2_PROTOCOL): measured boot skipped\"");
        return;
    }
    if (tpm_measure(tpm, DTE_TPM_PCR, persona_sha256, 32, "dte persona sha256") != 0 ||
        tpm_measure(tpm, DTE_TPM_PCR, report.weights, 32, "dte weights sha256") != 0 ||
        tpm_pcr_read_sha256(tpm, DTE_TPM_PCR, report.pcr) != 0) {
        dte_status("tpm present=1 error=extend text=\"HashLogExtendEvent or PCR_Read failed\"");
        return;
    }
    report.tpm = true;
    char pcr[65];
    hex(pcr, report.pcr, 32);
    dte_status("tpm present=1 pcr=%u events=2 sha256=%s", DTE_TPM_PCR, pcr);
}

static void print_report(void)
{
    char efi[65], weights[65], persona[65], digest[65], pcr[65];
    hex(efi, report.efi, 32);
    hex(weights, report.weights, 32);
    hex(persona, persona_sha256, 32);
    hex(digest, report.digest, 32);
    hex(pcr, report.pcr, 32);
    dte_status("attest efi_sha256=%s weights_sha256=%s persona_sha256=%s platform=%s pcr%u=%s digest=%s",
               report.efi_ok ? efi : "unreadable", weights, persona, report.platform, DTE_TPM_PCR,
               report.tpm ? pcr : "none", digest);   /* about 460 of the 512 characters a status line holds */
}

int attest_measure(efi_handle image, efi_system_table *st, const struct dte_boot_info *info,
                   const struct weights_manifest *man, const void *rsdp)
{
    char name[96];
    dte_status("persona name=\"%s\" sha256=%s strength=%.3f", status_escape(name, sizeof name, DTE_PERSONA_NAME),
               DTE_PERSONA_SHA256, (double)DTE_IDENTITY_STRENGTH);
    report.efi_ok = hash_firmware_file(image, st->boot_services, report.efi) == 0;
    for (int i = 0; i < 32; i++) {
        report.weights[i] = man->sha256[i];   /* all zeros: no model */
    }
    describe_platform(info, rsdp);
    measure_into_tpm(st->boot_services);
    compute_digest();
    report.measured = true;
    print_report();
    return report.efi_ok ? 0 : -1;
}

/* SHA-256 of the GGUF file whose bytes `data` holds in `layout` (docs/design.md "Weights layout"): plain spans as
 * they are, each laid-out tensor (dte_layout_list, in file order) unpacked one group of 4 rows at a time
 * (engine/layout.h), its n_rows % 4 last rows as they are. 0, or -1 when the GGUF does not parse, a group is wider
 * than the buffer or there is no memory for the list. */
static int hash_gguf(const uint8_t *data, uint64_t size, uint32_t layout, uint8_t out[32])
{
    static uint8_t group[256u * 1024u];
    dte_sha256_ctx ctx;
    dte_sha256_init(&ctx);
    uint64_t at = 0;
    int64_t n = layout == DTE_LAYOUT_GGUF ? 0 : dte_layout_list(data, size, size, layout, NULL, 0);
    dte_layout_range *r = n > 0 ? dte_alloc((size_t)n * sizeof *r, 8) : NULL;
    if (n < 0 || (n > 0 && (!r || dte_layout_list(data, size, size, layout, r, n) != n))) {
        return -1;
    }
    for (int64_t i = 0; i < n; i++) {
        uint64_t row = r[i].size / (uint64_t)r[i].n_rows, bytes = 4 * row, full = (uint64_t)r[i].n_rows / 4;
        if (bytes > sizeof group || r[i].offset < at) {
            return -1;
        }
        dte_sha256_update(&ctx, data + at, r[i].offset - at);
        const uint8_t *t = data + r[i].offset;
        for (uint64_t k = 0; k < full; k++) {
            dte_layout_unpack(layout, r[i].type, r[i].n_cols, 4, t + k * bytes, group);
            dte_sha256_update(&ctx, group, bytes);
        }
        dte_sha256_update(&ctx, t + full * bytes, r[i].size - full * bytes);
        at = r[i].offset + r[i].size;
    }
    dte_sha256_update(&ctx, data + at, size - at);
    dte_sha256_final(&ctx, out);
    return 0;
}

int attest_weights_loaded(const uint8_t *data, uint64_t size, uint64_t model_size, uint32_t layout)
{
    if (size < model_size) {
        dte_status("attest_weights resident=partial text=\"streamed model: checked by CRC32C per chunk only\"");
        return 0;
    }
    uint8_t got[32];
    char text[65];
    if (hash_gguf(data, model_size, layout, got) != 0) {
        dte_status("attest_weights error=layout text=\"the %s weights do not parse as a GGUF\"",
                   layout == DTE_LAYOUT_ROWS4 ? "rows4" : "gguf");
        return -1;
    }
    hex(text, got, 32);
    int match = 1;
    for (int i = 0; i < 32; i++) {
        match &= got[i] == report.weights[i];
    }
    dte_status("attest_weights sha256=%s match=%d", text, match);
    return match ? 0 : -1;
}

void attest_attach_identity(dte_sampler *sampler)
{
    static dte_identity identity;
    dte_identity_init(&identity, persona_sha256, DTE_IDENTITY_STRENGTH);
    dte_identity_attach(&identity, sampler);
}

size_t attest_blob(void *ctx, const uint8_t *nonce, size_t nonce_size, uint8_t *out, size_t cap)
{
    (void)ctx;
    if (!report.measured) {
        return 0;
    }
    dte_sha256_ctx h;
    uint8_t bound[32];
    dte_sha256_init(&h);
    dte_sha256_update(&h, report.digest, 32);
    dte_sha256_update(&h, nonce, nonce_size);
    dte_sha256_final(&h, bound);
    char digest[65], pcr[65], binding[65];
    hex(digest, report.digest, 32);
    hex(pcr, report.pcr, 32);
    hex(binding, bound, 32);
    char tail[256];
    uint64_t tail_len = dte_fmt(tail, sizeof tail, "digest=%s\npcr%u=%s\nnonce_sha256=%s\n", digest, DTE_TPM_PCR,
                                report.tpm ? pcr : "none", binding);
    if (report.canonical_len + tail_len > cap) {
        return 0;
    }
    for (uint64_t i = 0; i < report.canonical_len; i++) {
        out[i] = (uint8_t)report.canonical[i];
    }
    for (uint64_t i = 0; i < tail_len; i++) {
        out[report.canonical_len + i] = (uint8_t)tail[i];
    }
    return (size_t)(report.canonical_len + tail_len);
}
