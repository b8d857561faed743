/* The appliance's main line after ExitBootServices. First stage: report readiness. */
#include "boot/appliance.h"

#include "boot/status.h"

int dte_main_after_exit(const struct dte_boot_info *info)
{
    (void)info;
    dte_status("ready");
    return 0;
}
