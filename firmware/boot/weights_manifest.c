/* /DTE/WEIGHTS.MAN through the UEFI Simple File System (UEFI 2.10 §13.4, §13.5), before ExitBootServices. */
#include "boot/weights_manifest.h"

#include "boot/alloc.h"
#include "boot/esp_file.h"
#include "boot/status.h"
#include "engine/layout.h"

#define MAX_CHUNKS (1u << 22)   /* 4 Ti of 1 MiB chunks: any real model; bounds the allocation */

static uint64_t load_le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

int weights_manifest_parse(const uint8_t *data, uint64_t bytes, struct weights_manifest *out, const char **why)
{
    static const char magic[8] = WEIGHTS_MAN_MAGIC;
    *why = "ok";
    if (bytes < WEIGHTS_MAN_HEAD_BYTES) {
        *why = "shorter than its 72-byte header";
        return -1;
    }
    for (int i = 0; i < 8; i++) {
        if (data[i] != (uint8_t)magic[i]) {
            *why = "bad magic (not DTEWMAN2: rebuild the image with this dte)";
            return -1;
        }
    }
    out->model_size = load_le(data + 8, 8);
    out->weights_lba = load_le(data + 16, 8);
    out->chunk_size = (uint32_t)load_le(data + 24, 4);
    out->chunk_count = (uint32_t)load_le(data + 28, 4);
    for (int i = 0; i < 32; i++) {
        out->sha256[i] = data[32 + i];
    }
    out->layout = (uint32_t)load_le(data + 64, 4);
    out->crc32c = (const uint32_t *)(const void *)(data + WEIGHTS_MAN_HEAD_BYTES);
    if (out->layout > DTE_LAYOUT_ROWS4 || load_le(data + 68, 4) != 0) {
        *why = "unknown weights layout (a newer dte built this image)";
        return -1;
    }
    if (out->chunk_size == 0 || out->chunk_size % 4096u) {
        *why = "chunk size is not a positive multiple of 4096";
        return -1;
    }
    if (out->chunk_count > MAX_CHUNKS || bytes != WEIGHTS_MAN_HEAD_BYTES + 4ull * out->chunk_count) {
        *why = "length does not match its chunk count";
        return -1;
    }
    if (out->chunk_count != (out->model_size + out->chunk_size - 1) / out->chunk_size) {
        *why = "chunk count does not cover the model size";
        return -1;
    }
    return 0;
}

static efi_file *open_manifest(efi_handle image, efi_boot_services *bs)
{
    efi_file *file = NULL;
    efi_status st;
    switch (esp_file_open(image, bs, u"\\DTE\\WEIGHTS.MAN", &file, &st)) {
    case ESP_FILE_OK: return file;
    case ESP_FILE_NO_FILESYSTEM:
        dte_status("manifest error=no_filesystem text=\"the boot partition has no Simple File System\"");
        return NULL;
    default:
        dte_status("manifest error=not_found status=0x%llx text=\"no \\\\DTE\\\\WEIGHTS.MAN on the ESP: rebuild the "
                   "image with dte build\"",
                   (unsigned long long)st);
        return NULL;
    }
}

int weights_manifest_read(efi_handle image, efi_system_table *st, struct weights_manifest *out)
{
    efi_file *file = open_manifest(image, st->boot_services);
    if (!file) {
        return -1;
    }
    uint8_t head[WEIGHTS_MAN_HEAD_BYTES];
    const char *why = "read error";
    int rc = esp_file_read_exact(file, head, sizeof head);
    uint8_t *whole = NULL;
    if (rc == 0) {
        uint64_t count = load_le(head + 28, 4);
        uint64_t bytes = WEIGHTS_MAN_HEAD_BYTES + 4u * (count < MAX_CHUNKS ? count : MAX_CHUNKS);
        whole = dte_region_alloc("runtime", bytes, 64);
        if (!whole) {
            why = "no room in the runtime region";
            rc = -1;
        } else {
            for (uint32_t i = 0; i < WEIGHTS_MAN_HEAD_BYTES; i++) {
                whole[i] = head[i];
            }
            rc = esp_file_read_exact(file, whole + WEIGHTS_MAN_HEAD_BYTES, bytes - WEIGHTS_MAN_HEAD_BYTES);
            if (rc == 0) {
                rc = weights_manifest_parse(whole, bytes, out, &why);
            }
        }
    }
    file->close(file);
    if (rc != 0) {
        dte_status("manifest error=invalid text=\"\\\\DTE\\\\WEIGHTS.MAN: %s\"", why);
        return -1;
    }
    dte_status("manifest model_bytes=%llu weights_lba=%llu chunks=%u chunk_size=%u",
               (unsigned long long)out->model_size, (unsigned long long)out->weights_lba, out->chunk_count,
               out->chunk_size);
    return 0;
}
