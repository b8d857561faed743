/* mlx5: NVIDIA/Mellanox ConnectX-4 and newer Ethernet, polled, one SQ + one RQ, behind dte_netif (netif.h).
 *
 * Written from the public "Mellanox Adapters Programmer's Reference Manual (PRM)" (sections "Initialization
 * Segment", "Command Interface", "HCA Initialization", "Command Reference", "Work Queues", "Completion Queues") with
 * field offsets checked against the open definitions in Linux include/linux/mlx5/mlx5_ifc.h (struct names are cited
 * next to each command) and the stand-alone Snabb ConnectX driver. UNVERIFIED ON HARDWARE: it has only ever run
 * against the device model in tests/devmodels/mlx5_model.c.
 *
 * Bring-up (mlx5_init): wait !initializing -> command queue address -> wait !initializing -> ENABLE_HCA ->
 * QUERY_ISSI/SET_ISSI(1) -> QUERY_PAGES(boot)+MANAGE_PAGES -> QUERY_HCA_CAP/SET_HCA_CAP (general, current) ->
 * QUERY_PAGES(init)+MANAGE_PAGES -> INIT_HCA -> QUERY_PAGES(regular)+MANAGE_PAGES (a polled driver never sees
 * the EQ's page-request events, so it gives the run-time pages up front) -> QUERY_SPECIAL_CONTEXTS (reserved lkey: buffers are physical
 * addresses) -> ALLOC_UAR, ALLOC_PD, ALLOC_TRANSPORT_DOMAIN -> QUERY_NIC_VPORT_CONTEXT (MAC) -> CREATE_EQ (one EQ:
 * a CQ context must name one; it is never armed or polled) -> CREATE_CQ x2 -> CREATE_TIS -> CREATE_SQ + MODIFY_SQ
 * RST->RDY -> CREATE_RQ + MODIFY_RQ RST->RDY -> CREATE_TIR (direct to the RQ) -> CREATE_FLOW_TABLE (NIC RX) ->
 * CREATE_FLOW_GROUP (no match criteria) -> SET_FLOW_TABLE_ENTRY (forward to the TIR) -> SET_FLOW_TABLE_ROOT.
 */
#ifndef DTE_DRIVERS_MLX5_H
#define DTE_DRIVERS_MLX5_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drivers/pci.h"
#include "net/netif.h"

#define MLX5_PCI_VENDOR 0x15B3

enum mlx5_error {
    MLX5_OK = 0,
    MLX5_ERR_NO_DEVICE = -1,     /* not a ConnectX function, BAR 0 missing or too small */
    MLX5_ERR_TIMEOUT = -2,       /* firmware stayed initializing, or a command was never completed */
    MLX5_ERR_COMMAND = -3,       /* a command returned a non-zero status (logged by name, with the syndrome) */
    MLX5_ERR_DELIVERY = -4,      /* the command interface rejected the entry (delivery status) */
    MLX5_ERR_UNSUPPORTED = -5,   /* command interface revision, ISSI 1, or capabilities this driver needs */
    MLX5_ERR_NO_MEMORY = -6,
    MLX5_ERR_STATE = -7,         /* used before a successful init */
    MLX5_ERR_FULL = -8,          /* send queue full */
    MLX5_ERR_TOO_LARGE = -9,
};

struct mlx5_config {
    uint32_t init_timeout_ms;    /* wait for !initializing; 0 = 120000 */
    uint32_t command_timeout_ms; /* per command; 0 = 60000 */
    uint32_t queue_log_size;     /* log2 of SQ/RQ/CQ entries; 0 = 8 (256) */
};

struct mlx5_info {
    uint16_t fw_major, fw_minor, fw_subminor;
    uint16_t cmdif_rev;
    uint32_t boot_pages, init_pages, regular_pages;   /* pages handed over with MANAGE_PAGES */
    uint32_t uar, pd, transport_domain, eqn, tx_cqn, rx_cqn, tisn, sqn, rqn, tirn, flow_table, flow_group;
    uint32_t reserved_lkey;
    uint8_t mac[DTE_ETH_ADDR_SIZE];
};

struct mlx5;

/* Driver state for a function whose BAR 0 (the initialization segment and UAR pages) is at `bar0` (bar_size
 * bytes); pci_enable it first. NULL when out of memory. cfg may be NULL (defaults). */
struct mlx5 *mlx5_create(volatile void *bar0, uint64_t bar_size, const struct mlx5_config *cfg);
/* mlx5_create on the nth function with vendor 0x15B3 and a network class (0x02), enabling it. */
struct mlx5 *mlx5_find(int nth, const struct mlx5_config *cfg);
int mlx5_init(struct mlx5 *m);
bool mlx5_link_up(struct mlx5 *m);
int mlx5_transmit(struct mlx5 *m, const uint8_t *frame, size_t size);
size_t mlx5_poll_receive(struct mlx5 *m, uint8_t *buf, size_t capacity);
void mlx5_mac(struct mlx5 *m, uint8_t out[DTE_ETH_ADDR_SIZE]);
const struct mlx5_info *mlx5_get_info(const struct mlx5 *m);
const char *mlx5_error_name(int err);
/* PRM command status names ("BAD_PARAM", ...); "UNKNOWN" for others. */
const char *mlx5_status_name(uint8_t status);
const char *mlx5_opcode_name(uint16_t opcode);
void mlx5_netif(struct mlx5 *m, dte_netif *out);

#endif /* DTE_DRIVERS_MLX5_H */
