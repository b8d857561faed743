/* The appliance's main line after ExitBootServices. First stage: report readiness. */
#include "boot/appliance.h"

#include "boot/status.h"

int dte_main_before_exit(efi_handle image, efi_system_table *system_table, struct dte_boot_info *info)
{
    (void)image;
    (void)system_table;
    (void)info;
    return 0;
}

int dte_main_after_exit(const struct dte_boot_info *info)
{
    (void)info;
    dte_status("ready");
    return 0;
}
