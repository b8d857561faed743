/* Files on the boot volume: the EFI System Partition this image was loaded from, through LoadedImage's
 * DeviceHandle and its Simple File System (UEFI 2.10 §9.1, §13.4, §13.5). Before ExitBootServices only. */
#ifndef DTE_BOOT_ESP_FILE_H
#define DTE_BOOT_ESP_FILE_H

#include <stdint.h>

#include "boot/efi.h"
#include "boot/efi_proto.h"

enum esp_open_result {
    ESP_FILE_OK = 0,
    ESP_FILE_NO_FILESYSTEM = -1,   /* no LoadedImage, no Simple File System, or the volume did not open */
    ESP_FILE_NOT_FOUND = -2,       /* the volume opened, the file did not (*status says why) */
};

/* Open `path` (e.g. u"\\DTE\\WEIGHTS.MAN") read-only into *out; the caller closes it. *status gets the
 * failing EFI status (EFI_SUCCESS on success). */
enum esp_open_result esp_file_open(efi_handle image, efi_boot_services *bs, const efi_char16 *path, efi_file **out,
                                   efi_status *status);

/* Read exactly `bytes` (a short read is an error). 0 or -1. */
int esp_file_read_exact(efi_file *file, uint8_t *dst, uint64_t bytes);

#endif /* DTE_BOOT_ESP_FILE_H */
