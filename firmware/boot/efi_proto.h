/* The UEFI protocols the appliance uses before ExitBootServices to find its weights manifest and to time the
 * firmware's own disk path: Loaded Image (UEFI 2.10 §9.1), Simple File System and File (§13.4, §13.5), Block I/O
 * (§13.9), and LocateHandleBuffer (§7.3.15). Only the slots we call are typed; the rest stay void *. */
#ifndef DTE_BOOT_EFI_PROTO_H
#define DTE_BOOT_EFI_PROTO_H

#include <stdbool.h>
#include <stdint.h>

#include "boot/efi.h"

/* §9.1.1 EFI_LOADED_IMAGE_PROTOCOL_GUID */
#define EFI_LOADED_IMAGE_PROTOCOL_GUID {0x5B1B31A1, 0x9562, 0x11d2, {0x8E, 0x3F, 0x00, 0xA0, 0xC9, 0x69, 0x72, 0x3B}}
/* §13.4.1 EFI_SIMPLE_FILE_SYSTEM_PROTOCOL_GUID */
#define EFI_SIMPLE_FILE_SYSTEM_PROTOCOL_GUID \
    {0x964E5B22, 0x6459, 0x11d2, {0x8E, 0x39, 0x00, 0xA0, 0xC9, 0x69, 0x72, 0x3B}}
/* §13.9.1 EFI_BLOCK_IO_PROTOCOL_GUID */
#define EFI_BLOCK_IO_PROTOCOL_GUID {0x964E5B21, 0x6459, 0x11d2, {0x8E, 0x39, 0x00, 0xA0, 0xC9, 0x69, 0x72, 0x3B}}

/* §9.1.1 EFI_LOADED_IMAGE_PROTOCOL */
typedef struct {
    uint32_t revision;
    efi_handle parent_handle;
    efi_system_table *system_table;
    efi_handle device_handle;   /* the partition the image was loaded from (the ESP) */
    void *file_path;
    void *reserved;
    uint32_t load_options_size;
    void *load_options;
    void *image_base;
    uint64_t image_size;
    enum efi_memory_type image_code_type, image_data_type;
    void *unload;
} efi_loaded_image;

/* §13.5.1 EFI_FILE_PROTOCOL */
#define EFI_FILE_MODE_READ 0x0000000000000001ULL
typedef struct efi_file efi_file;
struct efi_file {
    uint64_t revision;
    efi_status(EFIAPI *open)(efi_file *self, efi_file **new_handle, const efi_char16 *file_name, uint64_t open_mode,
                             uint64_t attributes);
    efi_status(EFIAPI *close)(efi_file *self);
    void *delete_file;
    efi_status(EFIAPI *read)(efi_file *self, efi_uintn *buffer_size, void *buffer);
};

/* §13.4.1 EFI_SIMPLE_FILE_SYSTEM_PROTOCOL */
typedef struct efi_simple_file_system efi_simple_file_system;
struct efi_simple_file_system {
    uint64_t revision;
    efi_status(EFIAPI *open_volume)(efi_simple_file_system *self, efi_file **root);
};

/* §13.9.1 EFI_BLOCK_IO_MEDIA */
typedef struct {
    uint32_t media_id;
    bool removable_media, media_present, logical_partition, read_only, write_caching;
    uint32_t block_size;
    uint32_t io_align;
    uint64_t last_block;
} efi_block_io_media;

/* §13.9.1 EFI_BLOCK_IO_PROTOCOL */
typedef struct efi_block_io efi_block_io;
struct efi_block_io {
    uint64_t revision;
    efi_block_io_media *media;
    void *reset;
    efi_status(EFIAPI *read_blocks)(efi_block_io *self, uint32_t media_id, uint64_t lba, efi_uintn buffer_size,
                                    void *buffer);
};

/* §7.3.15 LocateHandleBuffer, SearchType ByProtocol (EFI_LOCATE_SEARCH_TYPE value 2). */
#define EFI_LOCATE_BY_PROTOCOL 2
typedef efi_status(EFIAPI *efi_locate_handle_buffer_fn)(int search_type, const efi_guid *protocol, void *search_key,
                                                        efi_uintn *count, efi_handle **buffer);

#endif /* DTE_BOOT_EFI_PROTO_H */
