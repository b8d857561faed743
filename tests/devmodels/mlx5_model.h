/* A simulated ConnectX (mlx5) function for hosted driver tests: the initialization segment and UAR page in a BAR
 * whose accesses trap synchronously (mmio_trap.h), the command queue (entries, mailbox chains, ownership, delivery
 * status), a firmware that checks each command's layout and the bring-up order of the PRM ("HCA Initialization"),
 * page handoff accounting, and SQ/RQ/CQ rings that move frames. Written from the PRM and Linux mlx5_ifc.h field
 * offsets independently of firmware/drivers/mlx5*.c. Violations are recorded one per line. */
#ifndef DTE_TESTS_MLX5_MODEL_H
#define DTE_TESTS_MLX5_MODEL_H

#include <stddef.h>
#include <stdint.h>

#define MLX5_MODEL_BAR_SIZE 0x10000u
#define MLX5_MODEL_UAR 4u

struct mlx5_model_config {
    uint16_t fw_major, fw_minor, fw_subminor, cmdif_rev;
    uint32_t init_reads;         /* reads of `initializing` showing 1, at reset and again after the cmdq address */
    uint32_t never_ready;        /* `initializing` never clears */
    int32_t boot_pages, init_pages;
    uint32_t supported_issi;     /* bit n: ISSI n */
    uint32_t port_type;          /* cmd_hca_cap port_type (1 Ethernet) */
    uint32_t reserved_lkey;
    uint32_t link_up;
    uint8_t mac[6];
    int32_t regular_pages;       /* QUERY_PAGES(regular) after INIT_HCA */
};

struct mlx5_model;

struct mlx5_model *mlx5_model_create(const struct mlx5_model_config *cfg);
void mlx5_model_destroy(struct mlx5_model *m);
void *mlx5_model_bar(struct mlx5_model *m);
/* The next command with this opcode answers status/syndrome instead of executing. */
void mlx5_model_fail(struct mlx5_model *m, uint16_t opcode, uint8_t status, uint32_t syndrome);
/* Commands executed so far, (opcode << 16 | op_mod) each, in order; returns how many (may exceed cap). */
int mlx5_model_command_log(struct mlx5_model *m, uint32_t *out, int cap);
/* Pages handed over with MANAGE_PAGES: out[0..2] boot, init, regular; announced: out[3..5] the same. */
void mlx5_model_pages(struct mlx5_model *m, int32_t out[6]);
/* Deliver a frame through the flow table into the next RQ WQE and write its CQE: 0, or -1 when not possible. */
int mlx5_model_inject(struct mlx5_model *m, const uint8_t *frame, size_t size);
/* The oldest transmitted frame (inline headers + data segments joined): its size, 0 when none. */
size_t mlx5_model_take_tx(struct mlx5_model *m, uint8_t *buf, size_t cap);
int mlx5_model_violations(struct mlx5_model *m, char *buf, size_t cap);

#endif
