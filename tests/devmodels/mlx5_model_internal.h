/* State shared by mlx5_model.c (initialization segment, command interface, firmware commands) and
 * mlx5_model_rings.c (SQ/RQ/CQ data movement). */
#ifndef DTE_TESTS_MLX5_MODEL_INTERNAL_H
#define DTE_TESTS_MLX5_MODEL_INTERNAL_H

#include <stdbool.h>

#include "mlx5_model.h"
#include "violation_log.h"

#define MODEL_MAX_PAGES 16384
#define MODEL_LOG_CAP 256
#define MODEL_TX_SLOTS 64
#define MODEL_FRAME_MAX 4096

struct model_cq {
    bool live;
    uint32_t cqn, log_size, pi;
    uint64_t base, dbr;
};

struct model_wq {
    bool live;
    uint32_t num, cqn, log_size, log_stride, state, ci;
    uint64_t base, dbr;
};

struct mlx5_model {
    struct mlx5_model_config cfg;
    uint8_t *bar;
    /* initialization segment */
    uint32_t cmdq_hi, cmdq_lo;
    bool cmdq_hi_written, cmdq_set;
    uint32_t init_left;
    /* bring-up state */
    bool enabled, issi_queried, hca_inited, cap_queried, cap_set, eq_live, tis_live, tir_live;
    bool table_live, group_live, fte_live, root_set;
    uint32_t issi;
    int page_stage;                  /* 1 boot, 2 init, 3 regular: the last QUERY_PAGES */
    bool pages_queried[4];
    int32_t pages_wanted[4], pages_given[4];
    uint64_t page_addrs[MODEL_MAX_PAGES];
    int page_count;
    uint32_t uar_alloc, pd_alloc, td_alloc;
    uint32_t group_start, group_end;
    struct model_cq cq[4];
    struct model_wq sq, rq;
    /* failure injection */
    uint16_t fail_opcode;
    uint8_t fail_status;
    uint32_t fail_syndrome;
    /* records */
    uint32_t log[MODEL_LOG_CAP];
    int log_count;
    uint8_t tx[MODEL_TX_SLOTS][MODEL_FRAME_MAX];
    size_t tx_len[MODEL_TX_SLOTS];
    unsigned tx_head, tx_count;
    struct violation_log violations;
};

/* Object numbers the model hands out. */
#define M_PD 0x15u
#define M_TD 0x21u
#define M_EQN 0x09u
#define M_CQN0 0x80u
#define M_TISN 0x30u
#define M_SQN 0x40u
#define M_RQN 0x50u
#define M_TIRN 0x60u
#define M_TABLE 0x70u
#define M_GROUP 0x71u

void model_violation(struct mlx5_model *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
uint32_t model_get(const uint8_t *p, uint32_t off, uint32_t hi, uint32_t lo);
void model_put(uint8_t *p, uint32_t off, uint32_t hi, uint32_t lo, uint32_t v);
uint64_t model_get64(const uint8_t *p, uint32_t off);
struct model_cq *model_find_cq(struct mlx5_model *m, uint32_t cqn);
/* A doorbell write to the UAR page (offset within it). */
void model_uar_write(struct mlx5_model *m, uint32_t off);

#endif
