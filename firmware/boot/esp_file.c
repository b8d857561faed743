/* Files on the boot volume (see esp_file.h). */
#include "boot/esp_file.h"

enum esp_open_result esp_file_open(efi_handle image, efi_boot_services *bs, const efi_char16 *path, efi_file **out,
                                   efi_status *status)
{
    static const efi_guid loaded_image_guid = EFI_LOADED_IMAGE_PROTOCOL_GUID;
    static const efi_guid fs_guid = EFI_SIMPLE_FILE_SYSTEM_PROTOCOL_GUID;
    efi_loaded_image *loaded = NULL;
    efi_simple_file_system *fs = NULL;
    efi_file *root = NULL;
    *out = NULL;
    *status = EFI_SUCCESS;
    if (EFI_IS_ERROR(*status = bs->handle_protocol(image, &loaded_image_guid, (void **)&loaded)) ||
        EFI_IS_ERROR(*status = bs->handle_protocol(loaded->device_handle, &fs_guid, (void **)&fs)) ||
        EFI_IS_ERROR(*status = fs->open_volume(fs, &root))) {
        return ESP_FILE_NO_FILESYSTEM;
    }
    *status = root->open(root, out, path, EFI_FILE_MODE_READ, 0);
    root->close(root);
    if (EFI_IS_ERROR(*status)) {
        *out = NULL;
        return ESP_FILE_NOT_FOUND;
    }
    return ESP_FILE_OK;
}

int esp_file_read_exact(efi_file *file, uint8_t *dst, uint64_t bytes)
{
    uint64_t done = 0;
    while (done < bytes) {
        efi_uintn n = bytes - done;
        if (EFI_IS_ERROR(file->read(file, &n, dst + done)) || n == 0) {
            return -1;
        }
        done += n;
    }
    return 0;
}
