/* The subset of UEFI 2.10 types the firmware uses. Layouts and values cite the spec section.
 * Every firmware function pointer is EFIAPI (Microsoft x64 calling convention, UEFI 2.10 §2.3.4), so the same
 * declarations work whatever the compiler's default ABI is. Unused table slots are kept as `void *` so the
 * offsets of the used ones stay right; add a real prototype here when you start using one.
 */
#ifndef DTE_BOOT_EFI_H
#define DTE_BOOT_EFI_H

#include <stddef.h>
#include <stdint.h>

#define EFIAPI __attribute__((ms_abi))

typedef uint64_t efi_status;
typedef void *efi_handle;
typedef void *efi_event;
typedef uint16_t efi_char16;
typedef uint64_t efi_physical_addr;
typedef uint64_t efi_virtual_addr;
typedef uint64_t efi_uintn;

/* Appendix D, status codes: errors have the high bit set. */
#define EFI_ERROR_BIT (1ULL << 63)
#define EFI_SUCCESS 0ULL
#define EFI_LOAD_ERROR (EFI_ERROR_BIT | 1)
#define EFI_INVALID_PARAMETER (EFI_ERROR_BIT | 2)
#define EFI_UNSUPPORTED (EFI_ERROR_BIT | 3)
#define EFI_BUFFER_TOO_SMALL (EFI_ERROR_BIT | 5)
#define EFI_NOT_FOUND (EFI_ERROR_BIT | 14)
#define EFI_OUT_OF_RESOURCES (EFI_ERROR_BIT | 9)
#define EFI_IS_ERROR(s) (((s) & EFI_ERROR_BIT) != 0)

typedef struct {
    uint32_t data1;
    uint16_t data2;
    uint16_t data3;
    uint8_t data4[8];
} efi_guid;

/* §4.2 EFI_TABLE_HEADER */
typedef struct {
    uint64_t signature;
    uint32_t revision;
    uint32_t header_size;
    uint32_t crc32;
    uint32_t reserved;
} efi_table_header;

/* §7.2 EFI_MEMORY_TYPE */
enum efi_memory_type {
    EfiReservedMemoryType,
    EfiLoaderCode,
    EfiLoaderData,
    EfiBootServicesCode,
    EfiBootServicesData,
    EfiRuntimeServicesCode,
    EfiRuntimeServicesData,
    EfiConventionalMemory,
    EfiUnusableMemory,
    EfiACPIReclaimMemory,
    EfiACPIMemoryNVS,
    EfiMemoryMappedIO,
    EfiMemoryMappedIOPortSpace,
    EfiPalCode,
    EfiPersistentMemory,
    EfiUnacceptedMemoryType,
    EfiMaxMemoryType
};

/* §7.2 EFI_ALLOCATE_TYPE */
enum efi_allocate_type { AllocateAnyPages, AllocateMaxAddress, AllocateAddress, MaxAllocateType };

#define EFI_PAGE_SIZE 4096ULL

/* §7.2 EFI_MEMORY_DESCRIPTOR (version 1). Step through a map by the descriptor size GetMemoryMap returns,
 * never by sizeof(). */
typedef struct {
    uint32_t type;
    uint32_t pad;
    efi_physical_addr physical_start;
    efi_virtual_addr virtual_start;
    uint64_t number_of_pages;
    uint64_t attribute;
} efi_memory_descriptor;

/* §12.4 EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL */
typedef struct efi_simple_text_output efi_simple_text_output;
struct efi_simple_text_output {
    efi_status(EFIAPI *reset)(efi_simple_text_output *self, uint8_t extended_verification);
    efi_status(EFIAPI *output_string)(efi_simple_text_output *self, const efi_char16 *string);
    void *test_string;
    void *query_mode;
    void *set_mode;
    void *set_attribute;
    void *clear_screen;
    void *set_cursor_position;
    void *enable_cursor;
    void *mode;
};

/* §4.4 EFI_BOOT_SERVICES, every slot in spec order. */
typedef struct {
    efi_table_header hdr;
    /* Task priority services */
    void *raise_tpl;
    void *restore_tpl;
    /* Memory services (§7.2) */
    efi_status(EFIAPI *allocate_pages)(enum efi_allocate_type type, enum efi_memory_type memory_type, efi_uintn pages,
                                       efi_physical_addr *memory);
    efi_status(EFIAPI *free_pages)(efi_physical_addr memory, efi_uintn pages);
    efi_status(EFIAPI *get_memory_map)(efi_uintn *memory_map_size, efi_memory_descriptor *memory_map,
                                       efi_uintn *map_key, efi_uintn *descriptor_size, uint32_t *descriptor_version);
    efi_status(EFIAPI *allocate_pool)(enum efi_memory_type pool_type, efi_uintn size, void **buffer);
    efi_status(EFIAPI *free_pool)(void *buffer);
    /* Event and timer services (§7.1) */
    void *create_event;
    void *set_timer;
    void *wait_for_event;
    void *signal_event;
    void *close_event;
    void *check_event;
    /* Protocol handler services (§7.3) */
    void *install_protocol_interface;
    void *reinstall_protocol_interface;
    void *uninstall_protocol_interface;
    efi_status(EFIAPI *handle_protocol)(efi_handle handle, const efi_guid *protocol, void **interface);
    void *reserved;
    void *register_protocol_notify;
    void *locate_handle;
    void *locate_device_path;
    void *install_configuration_table;
    /* Image services (§7.4) */
    void *load_image;
    void *start_image;
    void *exit;
    void *unload_image;
    efi_status(EFIAPI *exit_boot_services)(efi_handle image_handle, efi_uintn map_key);
    /* Miscellaneous services (§7.5) */
    void *get_next_monotonic_count;
    efi_status(EFIAPI *stall)(efi_uintn microseconds);
    efi_status(EFIAPI *set_watchdog_timer)(efi_uintn timeout, uint64_t watchdog_code, efi_uintn data_size,
                                           const efi_char16 *watchdog_data);
    /* Driver support services */
    void *connect_controller;
    void *disconnect_controller;
    /* Open and close protocol services */
    void *open_protocol;
    void *close_protocol;
    void *open_protocol_information;
    /* Library services */
    void *protocols_per_handle;
    void *locate_handle_buffer;
    efi_status(EFIAPI *locate_protocol)(const efi_guid *protocol, void *registration, void **interface);
    void *install_multiple_protocol_interfaces;
    void *uninstall_multiple_protocol_interfaces;
    /* 32-bit CRC services */
    void *calculate_crc32;
    /* Miscellaneous services */
    void *copy_mem;
    void *set_mem;
    void *create_event_ex;
} efi_boot_services;

/* §4.3 EFI_SYSTEM_TABLE */
typedef struct {
    efi_table_header hdr;
    const efi_char16 *firmware_vendor;
    uint32_t firmware_revision;
    efi_handle console_in_handle;
    void *con_in;
    efi_handle console_out_handle;
    efi_simple_text_output *con_out;
    efi_handle standard_error_handle;
    efi_simple_text_output *std_err;
    void *runtime_services;
    efi_boot_services *boot_services;
    efi_uintn number_of_table_entries;
    void *configuration_table;
} efi_system_table;

#endif /* DTE_BOOT_EFI_H */
