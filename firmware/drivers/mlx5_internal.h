/* mlx5 driver internals shared by mlx5.c (bring-up), mlx5_cmd.c (command interface) and mlx5_queues.c (rings). */
#ifndef DTE_DRIVERS_MLX5_INTERNAL_H
#define DTE_DRIVERS_MLX5_INTERNAL_H

#include "drivers/mlx5.h"

/* Initialization segment (PRM "Initialization Segment"; Linux struct mlx5_init_seg). Big-endian dwords. */
#define ISEG_FW_REV 0x00            /* 31:16 fw_rev_minor, 15:0 fw_rev_major */
#define ISEG_CMDIF_REV 0x04         /* 31:16 cmd_interface_rev, 15:0 fw_rev_subminor */
#define ISEG_CMDQ_ADDR_H 0x10
#define ISEG_CMDQ_ADDR_L 0x14       /* 31:12 address, 9:8 nic_interface, 7:4 log_cmdq_size, 3:0 log_cmdq_stride */
#define ISEG_CMD_DBELL 0x18         /* bit n rings command queue entry n */
#define ISEG_INITIALIZING 0x1FC     /* bit 31: firmware still initializing */
#define CMDIF_REV 5

/* Opcodes (PRM "Command Reference"; Linux enum MLX5_CMD_OP_*). */
enum {
    OP_QUERY_HCA_CAP = 0x100,
    OP_INIT_HCA = 0x102,
    OP_ENABLE_HCA = 0x104,
    OP_QUERY_PAGES = 0x107,
    OP_MANAGE_PAGES = 0x108,
    OP_SET_HCA_CAP = 0x109,
    OP_QUERY_ISSI = 0x10A,
    OP_SET_ISSI = 0x10B,
    OP_QUERY_SPECIAL_CONTEXTS = 0x203,
    OP_CREATE_EQ = 0x301,
    OP_CREATE_CQ = 0x400,
    OP_QUERY_VPORT_STATE = 0x750,
    OP_QUERY_NIC_VPORT_CONTEXT = 0x754,
    OP_ALLOC_PD = 0x800,
    OP_ALLOC_UAR = 0x802,
    OP_ALLOC_TRANSPORT_DOMAIN = 0x816,
    OP_CREATE_TIR = 0x900,
    OP_CREATE_SQ = 0x904,
    OP_MODIFY_SQ = 0x905,
    OP_CREATE_RQ = 0x908,
    OP_MODIFY_RQ = 0x909,
    OP_CREATE_TIS = 0x912,
    OP_SET_FLOW_TABLE_ROOT = 0x92F,
    OP_CREATE_FLOW_TABLE = 0x930,
    OP_CREATE_FLOW_GROUP = 0x933,
    OP_SET_FLOW_TABLE_ENTRY = 0x936,
};

#define MLX5_PAGE 4096u
#define MLX5_MAX_MAILBOXES 72u      /* 72 x 512 bytes: SET_HCA_CAP (0x1010) and MANAGE_PAGES of 4000+ pages */
#define MLX5_CMD_MAX (16u + MLX5_MAX_MAILBOXES * 512u)

struct mlx5_cmd {                   /* one command being built: linear input and output images */
    uint8_t in[MLX5_CMD_MAX];
    uint8_t out[MLX5_CMD_MAX];
    uint32_t inlen, outlen;
};

struct mlx5_cq {
    uint8_t *cqes;                  /* 64-byte CQEs */
    volatile uint32_t *dbrec;       /* [0] consumer index (big-endian) */
    uint32_t log_size, ci, cqn;
};

struct mlx5_wq {
    uint8_t *wqes;
    volatile uint32_t *dbrec;       /* RQ: [0] receive counter; SQ: [1] send counter (big-endian) */
    uint8_t *buffers;               /* one 2 KiB buffer per entry */
    uint32_t log_size, pc, cc, num;
};

struct mlx5 {
    volatile uint8_t *bar;
    uint64_t bar_size;
    struct mlx5_config cfg;
    struct mlx5_info info;
    uint8_t *cmdq;                  /* command queue page (entry 0 used) */
    uint8_t *mailboxes;             /* 2 x MLX5_MAX_MAILBOXES, 1 KiB apart: inputs then outputs */
    uint32_t log_cmdq_stride;
    uint8_t token;
    struct mlx5_cmd cmd;
    uint8_t *eq;
    struct mlx5_cq tx_cq, rx_cq;
    struct mlx5_wq sq, rq;
    bool ready;
};

/* Big-endian bit fields at a byte offset, the PRM's (offset, bit hi..lo) notation. */
void mlx5_set(uint8_t *buf, uint32_t off, uint32_t hi, uint32_t lo, uint32_t value);
uint32_t mlx5_get(const uint8_t *buf, uint32_t off, uint32_t hi, uint32_t lo);
void mlx5_set64(uint8_t *buf, uint32_t off, uint64_t value);
uint32_t mlx5_be32(uint32_t v);

/* Start a command: zero the images, set opcode (in 0x00 31:16) and op_mod (in 0x04 15:0), the lengths. */
struct mlx5_cmd *mlx5_cmd_begin(struct mlx5 *m, uint16_t opcode, uint16_t op_mod, uint32_t inlen, uint32_t outlen);
/* Post it on entry 0, wait, check delivery and output status; logs failures by name. 0 or a negative error. */
int mlx5_cmd_exec(struct mlx5 *m);
int mlx5_cmd_setup(struct mlx5 *m);
int mlx5_wait_initialized(struct mlx5 *m, const char *stage);
void *mlx5_dma(struct mlx5 *m, size_t size, size_t align);

/* Queues (mlx5_queues.c). */
int mlx5_create_queues(struct mlx5 *m);
int mlx5_tx(struct mlx5 *m, const uint8_t *frame, size_t size);
size_t mlx5_rx(struct mlx5 *m, uint8_t *buf, size_t capacity);

#endif /* DTE_DRIVERS_MLX5_INTERNAL_H */
