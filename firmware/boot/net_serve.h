/* The appliance's network side (docs/protocol.md): after the boot prompt's generation, on builds with a network
 * (`dte build --net --key KEYFILE`), pick the NIC (virtio-net, else mlx5), bring up the dte IPv4 stack with the
 * board's addresses and serve the token protocol on the real engine, polling on the boot core, forever. */
#ifndef DTE_BOOT_NET_SERVE_H
#define DTE_BOOT_NET_SERVE_H

#include <stdint.h>

/* Whether this build serves the network (DTE_NET_ENABLED with a compiled-in key). */
int net_serve_enabled(void);

/* Never returns on success; -1 after logging `dte: net error=...` (no NIC, the NIC or the stack failed).
 * `weights_sha256`: the manifest's SHA-256 of the weights the engine runs, told to clients in INFO. */
int net_serve(const uint8_t weights_sha256[32]);

#endif /* DTE_BOOT_NET_SERVE_H */
