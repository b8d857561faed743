/* mlx5 queues and the data path: EQ, CQs, TIS, SQ, RQ, TIR, the NIC RX flow table (PRM "Event Queues",
 * "Completion Queues", "Send Queue", "Receive Queue", "Transport Interface", "Flow Table"), send WQEs (control +
 * Ethernet segment with inline headers + data segment), receive WQEs (one data segment), CQE polling by owner bit.
 * Buffers are addressed physically through the reserved lkey (sqc/rqc rlky = 1). */
#include "drivers/drvlog.h"
#include "drivers/mlx5_internal.h"
#include "drivers/mmio.h"

#define EQ_LOG_SIZE 6                   /* 64 EQEs = one page; never armed, never polled */
#define WQE_BYTES 64u                   /* one send WQE basic block (log_wq_stride 6) */
#define RWQE_BYTES 16u                  /* one receive data segment (log_wq_stride 4) */
#define BUF_BYTES 2048u
#define INLINE_HDR 18u                  /* min_wqe_inline_mode L2: Ethernet header + VLAN tag room */
#define ETH_MIN 60u
#define UAR_DB_OFFSET 0x800u            /* doorbell / BlueFlame register within the UAR page */
#define OPCODE_SEND 0x0Au
#define CQE_OWNER_INIT 0xF1u            /* opcode 0xF (invalid), owner 1 */
#define CQE_REQ 0x0u
#define CQE_RESP_SEND 0x2u
#define CQE_REQ_ERR 0xDu
#define CQE_RESP_ERR 0xEu
#define TIR_DEST 2u                     /* flow destination type TIR */
#define FWD_DEST 4u                     /* flow context action FWD_DEST */
#define STATE_RST 0u
#define STATE_RDY 1u

static uint32_t pages_of(uint32_t bytes)
{
    return (bytes + MLX5_PAGE - 1) / MLX5_PAGE;
}

/* pas[]: one 64-bit address per 4 KiB page of a physically contiguous buffer (log_page_size 0). */
static void put_pas(uint8_t *in, uint32_t off, const uint8_t *buf, uint32_t bytes)
{
    for (uint32_t i = 0; i < pages_of(bytes); i++) {
        mlx5_set64(in, off + 8u * i, (uint64_t)(uintptr_t)(buf + (size_t)i * MLX5_PAGE));
    }
}

/* create_eq_in: eqc at 0x10 (log_eq_size 0x0C 28:24, uar_page 0x0C 23:0, log_page_size 0x18 28:24),
 * event_bitmask 0x58 (none), pas 0x110; create_eq_out eq_number 0x08 7:0. */
static int create_eq(struct mlx5 *m)
{
    uint32_t bytes = 64u << EQ_LOG_SIZE;
    m->eq = mlx5_dma(m, bytes, MLX5_PAGE);
    if (!m->eq) {
        return MLX5_ERR_NO_MEMORY;
    }
    for (uint32_t i = 0; i < (1u << EQ_LOG_SIZE); i++) {
        m->eq[64u * i + 0x3F] = 1;      /* EQE owner = hardware */
    }
    struct mlx5_cmd *c = mlx5_cmd_begin(m, OP_CREATE_EQ, 0, 0x110 + 8u * pages_of(bytes), 0x10);
    mlx5_set(c->in, 0x10 + 0x0C, 28, 24, EQ_LOG_SIZE);
    mlx5_set(c->in, 0x10 + 0x0C, 23, 0, m->info.uar);
    put_pas(c->in, 0x110, m->eq, bytes);
    int rc = mlx5_cmd_exec(m);
    if (!rc) {
        m->info.eqn = mlx5_get(c->out, 0x08, 7, 0);
    }
    return rc;
}

/* create_cq_in: cqc at 0x10 (cqe_sz 0x00 23:21 = 0: 64 bytes; log_cq_size 0x0C 28:24; uar_page 0x0C 23:0;
 * c_eqn 0x14 7:0; log_page_size 0x18 28:24; dbr_addr 0x38), pas 0x110; create_cq_out cqn 0x08 23:0. */
static int create_cq(struct mlx5 *m, struct mlx5_cq *cq, uint32_t *cqn_out)
{
    cq->log_size = m->cfg.queue_log_size;
    uint32_t bytes = 64u << cq->log_size;
    cq->cqes = mlx5_dma(m, bytes, MLX5_PAGE);
    cq->dbrec = mlx5_dma(m, 64, 64);
    if (!cq->cqes || !cq->dbrec) {
        return MLX5_ERR_NO_MEMORY;
    }
    for (uint32_t i = 0; i < (1u << cq->log_size); i++) {
        cq->cqes[64u * i + 0x3F] = CQE_OWNER_INIT;
    }
    struct mlx5_cmd *c = mlx5_cmd_begin(m, OP_CREATE_CQ, 0, 0x110 + 8u * pages_of(bytes), 0x10);
    mlx5_set(c->in, 0x10 + 0x0C, 28, 24, cq->log_size);
    mlx5_set(c->in, 0x10 + 0x0C, 23, 0, m->info.uar);
    mlx5_set(c->in, 0x10 + 0x14, 7, 0, m->info.eqn);
    mlx5_set64(c->in, 0x10 + 0x38, (uint64_t)(uintptr_t)cq->dbrec);
    put_pas(c->in, 0x110, cq->cqes, bytes);
    int rc = mlx5_cmd_exec(m);
    if (!rc) {
        cq->cqn = *cqn_out = mlx5_get(c->out, 0x08, 23, 0);
    }
    return rc;
}

/* create_tis_in: tisc at 0x20 (transport_domain 0x24 23:0); create_tis_out tisn 0x08 23:0. */
static int create_tis(struct mlx5 *m)
{
    struct mlx5_cmd *c = mlx5_cmd_begin(m, OP_CREATE_TIS, 0, 0xC0, 0x10);
    mlx5_set(c->in, 0x20 + 0x24, 23, 0, m->info.transport_domain);
    int rc = mlx5_cmd_exec(m);
    if (!rc) {
        m->info.tisn = mlx5_get(c->out, 0x08, 23, 0);
    }
    return rc;
}

static int alloc_wq(struct mlx5 *m, struct mlx5_wq *wq, uint32_t stride)
{
    wq->log_size = m->cfg.queue_log_size;
    wq->wqes = mlx5_dma(m, (size_t)stride << wq->log_size, MLX5_PAGE);
    wq->buffers = mlx5_dma(m, (size_t)BUF_BYTES << wq->log_size, 64);
    wq->dbrec = mlx5_dma(m, 64, 64);
    return wq->wqes && wq->buffers && wq->dbrec ? MLX5_OK : MLX5_ERR_NO_MEMORY;
}

/* struct mlx5_ifc_wq_bits at `wq` (sqc/rqc + 0x30): wq_type 0x00 31:28 (1 cyclic), pd 0x08 23:0, uar_page 0x0C
 * 23:0, dbr_addr 0x10, log_wq_stride 0x20 19:16, log_wq_pg_sz 0x20 12:8, log_wq_sz 0x20 4:0, pas 0xC0. */
static void put_wq(struct mlx5 *m, uint8_t *in, uint32_t wq, const struct mlx5_wq *q, uint32_t log_stride)
{
    mlx5_set(in, wq + 0x00, 31, 28, 1);
    mlx5_set(in, wq + 0x08, 23, 0, m->info.pd);
    mlx5_set(in, wq + 0x0C, 23, 0, m->info.uar);
    mlx5_set64(in, wq + 0x10, (uint64_t)(uintptr_t)q->dbrec);
    mlx5_set(in, wq + 0x20, 19, 16, log_stride);
    mlx5_set(in, wq + 0x20, 4, 0, q->log_size);
    put_pas(in, wq + 0xC0, q->wqes, (1u << log_stride) << q->log_size);
}

/* create_sq_in: sqc at 0x20 (rlky 0x00 31, flush_in_error_en 0x00 28, min_wqe_inline_mode 0x00 26:24 = 1 L2,
 * cqn 0x08 23:0, tis_lst_sz 0x20 31:16, tis_num_0 0x2C 23:0, wq 0x30); create_sq_out sqn 0x08 23:0. */
static int create_sq(struct mlx5 *m)
{
    int rc = alloc_wq(m, &m->sq, WQE_BYTES);
    if (rc) {
        return rc;
    }
    uint32_t bytes = WQE_BYTES << m->sq.log_size;
    struct mlx5_cmd *c = mlx5_cmd_begin(m, OP_CREATE_SQ, 0, 0x110 + 8u * pages_of(bytes), 0x10);
    mlx5_set(c->in, 0x20, 31, 31, 1);
    mlx5_set(c->in, 0x20, 28, 28, 1);
    mlx5_set(c->in, 0x20, 26, 24, 1);
    mlx5_set(c->in, 0x20 + 0x08, 23, 0, m->info.tx_cqn);
    mlx5_set(c->in, 0x20 + 0x20, 31, 16, 1);
    mlx5_set(c->in, 0x20 + 0x2C, 23, 0, m->info.tisn);
    put_wq(m, c->in, 0x20 + 0x30, &m->sq, 6);
    if ((rc = mlx5_cmd_exec(m))) {
        return rc;
    }
    m->info.sqn = mlx5_get(c->out, 0x08, 23, 0);
    return MLX5_OK;
}

/* create_rq_in: rqc at 0x20 (rlky 0x00 31, vsd 0x00 28, flush_in_error_en 0x00 18, cqn 0x08 23:0, wq 0x30). The
 * receive WQEs (data segments: byte_count, lkey, address) are posted before the RQ exists. */
static int create_rq(struct mlx5 *m)
{
    int rc = alloc_wq(m, &m->rq, RWQE_BYTES);
    if (rc) {
        return rc;
    }
    struct mlx5_wq *q = &m->rq;
    for (uint32_t i = 0; i < (1u << q->log_size); i++) {
        uint8_t *w = q->wqes + RWQE_BYTES * i;
        mlx5_set(w, 0x00, 31, 0, BUF_BYTES);
        mlx5_set(w, 0x04, 31, 0, m->info.reserved_lkey);
        mlx5_set64(w, 0x08, (uint64_t)(uintptr_t)(q->buffers + (size_t)BUF_BYTES * i));
    }
    q->pc = 1u << q->log_size;
    q->dbrec[0] = mlx5_be32(q->pc & 0xFFFFu);
    uint32_t bytes = RWQE_BYTES << q->log_size;
    struct mlx5_cmd *c = mlx5_cmd_begin(m, OP_CREATE_RQ, 0, 0x110 + 8u * pages_of(bytes), 0x10);
    mlx5_set(c->in, 0x20, 31, 31, 1);
    mlx5_set(c->in, 0x20, 28, 28, 1);
    mlx5_set(c->in, 0x20, 18, 18, 1);
    mlx5_set(c->in, 0x20 + 0x08, 23, 0, m->info.rx_cqn);
    put_wq(m, c->in, 0x20 + 0x30, q, 4);
    if ((rc = mlx5_cmd_exec(m))) {
        return rc;
    }
    m->info.rqn = mlx5_get(c->out, 0x08, 23, 0);
    return MLX5_OK;
}

/* modify_sq_in / modify_rq_in: current state 0x08 31:28, queue number 0x08 23:0, context at 0x20 with the new
 * state at 23:20. RST -> RDY. */
static int modify_to_ready(struct mlx5 *m, uint16_t opcode, uint32_t number)
{
    struct mlx5_cmd *c = mlx5_cmd_begin(m, opcode, 0, 0x20 + 0xF0, 0x10);
    mlx5_set(c->in, 0x08, 31, 28, STATE_RST);
    mlx5_set(c->in, 0x08, 23, 0, number);
    mlx5_set(c->in, 0x20, 23, 20, STATE_RDY);
    return mlx5_cmd_exec(m);
}

/* create_tir_in: tirc at 0x20 (disp_type 0x04 31:28 = 0 direct, inline_rqn 0x1C 23:0, transport_domain 0x24). */
static int create_tir(struct mlx5 *m)
{
    struct mlx5_cmd *c = mlx5_cmd_begin(m, OP_CREATE_TIR, 0, 0x20 + 0xF0, 0x10);
    mlx5_set(c->in, 0x20 + 0x1C, 23, 0, m->info.rqn);
    mlx5_set(c->in, 0x20 + 0x24, 23, 0, m->info.transport_domain);
    int rc = mlx5_cmd_exec(m);
    if (!rc) {
        m->info.tirn = mlx5_get(c->out, 0x08, 23, 0);
    }
    return rc;
}

/* NIC RX (table_type 0 at 0x10 31:24) flow table with one group without match criteria and one entry that
 * forwards everything the vport receives to the TIR. create_flow_table_in: flow_table_context 0x18 (log_size
 * 7:0); create_flow_group_in: table_id 0x14, start 0x1C, end 0x24, match_criteria_enable 0x3C; set_fte_in:
 * table_id 0x14, flow_index 0x20, flow_context 0x40 (group_id 0x04, action 0x0C 15:0, destination_list_size
 * 0x10 23:0, destination 0x300: type 31:24, id 23:0); set_flow_table_root_in: table_id 0x14. */
static int create_flow(struct mlx5 *m)
{
    struct mlx5_cmd *c = mlx5_cmd_begin(m, OP_CREATE_FLOW_TABLE, 0, 0x40, 0x10);
    mlx5_set(c->in, 0x18, 7, 0, 0);
    int rc = mlx5_cmd_exec(m);
    if (rc) {
        return rc;
    }
    m->info.flow_table = mlx5_get(c->out, 0x08, 23, 0);
    c = mlx5_cmd_begin(m, OP_CREATE_FLOW_GROUP, 0, 0x400, 0x10);
    mlx5_set(c->in, 0x14, 23, 0, m->info.flow_table);
    mlx5_set(c->in, 0x1C, 31, 0, 0);
    mlx5_set(c->in, 0x24, 31, 0, 0);
    if ((rc = mlx5_cmd_exec(m))) {
        return rc;
    }
    m->info.flow_group = mlx5_get(c->out, 0x08, 23, 0);
    c = mlx5_cmd_begin(m, OP_SET_FLOW_TABLE_ENTRY, 0, 0x40 + 0x300 + 8, 0x10);
    mlx5_set(c->in, 0x14, 23, 0, m->info.flow_table);
    mlx5_set(c->in, 0x20, 31, 0, 0);
    mlx5_set(c->in, 0x40 + 0x04, 31, 0, m->info.flow_group);
    mlx5_set(c->in, 0x40 + 0x0C, 15, 0, FWD_DEST);
    mlx5_set(c->in, 0x40 + 0x10, 23, 0, 1);
    mlx5_set(c->in, 0x40 + 0x300, 31, 24, TIR_DEST);
    mlx5_set(c->in, 0x40 + 0x300, 23, 0, m->info.tirn);
    if ((rc = mlx5_cmd_exec(m))) {
        return rc;
    }
    c = mlx5_cmd_begin(m, OP_SET_FLOW_TABLE_ROOT, 0, 0x40, 0x10);
    mlx5_set(c->in, 0x14, 23, 0, m->info.flow_table);
    return mlx5_cmd_exec(m);
}

int mlx5_create_queues(struct mlx5 *m)
{
    int rc;
    if ((rc = create_eq(m)) || (rc = create_cq(m, &m->tx_cq, &m->info.tx_cqn)) ||
        (rc = create_cq(m, &m->rx_cq, &m->info.rx_cqn)) || (rc = create_tis(m)) || (rc = create_sq(m)) ||
        (rc = modify_to_ready(m, OP_MODIFY_SQ, m->info.sqn)) || (rc = create_rq(m)) ||
        (rc = modify_to_ready(m, OP_MODIFY_RQ, m->info.rqn)) || (rc = create_tir(m)) || (rc = create_flow(m))) {
        return rc;
    }
    return MLX5_OK;
}

/* --- data path ------------------------------------------------------------------------------------------- */

/* The next CQE software owns (owner bit == wrap parity of the consumer index, opcode not 0xF), or NULL. */
static const uint8_t *next_cqe(struct mlx5_cq *cq)
{
    const uint8_t *cqe = cq->cqes + 64u * (cq->ci & ((1u << cq->log_size) - 1u));
    uint8_t op_own = __atomic_load_n(&cqe[0x3F], __ATOMIC_ACQUIRE);
    if ((op_own >> 4) == 0xF || (op_own & 1u) != ((cq->ci >> cq->log_size) & 1u)) {
        return 0;
    }
    return cqe;
}

static void consume_cqe(struct mlx5_cq *cq)
{
    cq->ci++;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    cq->dbrec[0] = mlx5_be32(cq->ci & 0xFFFFFFu);
}

static void reclaim_tx(struct mlx5 *m)
{
    const uint8_t *cqe;
    while ((cqe = next_cqe(&m->tx_cq))) {
        uint32_t opcode = cqe[0x3F] >> 4;
        uint16_t counter = (uint16_t)mlx5_get(cqe, 0x3C, 31, 16);   /* wqe_counter */
        if (opcode == CQE_REQ_ERR) {
            drv_logf("dte: mlx5 error=tx_completion syndrome=0x%x wqe=%u", cqe[0x37], counter);
        }
        m->sq.cc = m->sq.pc - (uint16_t)(m->sq.pc - (uint16_t)(counter + 1u));
        consume_cqe(&m->tx_cq);
    }
}

int mlx5_tx(struct mlx5 *m, const uint8_t *frame, size_t size)
{
    struct mlx5_wq *q = &m->sq;
    if (size > BUF_BYTES) {
        return MLX5_ERR_TOO_LARGE;
    }
    reclaim_tx(m);
    if (q->pc - q->cc >= (1u << q->log_size)) {
        return MLX5_ERR_FULL;
    }
    uint32_t slot = q->pc & ((1u << q->log_size) - 1u);
    uint8_t *buf = q->buffers + (size_t)BUF_BYTES * slot;
    uint32_t len = size < ETH_MIN ? ETH_MIN : (uint32_t)size;          /* 802.3 minimum, zero padded */
    for (uint32_t i = 0; i < len; i++) {
        buf[i] = i < size ? frame[i] : 0;
    }
    uint8_t *w = q->wqes + WQE_BYTES * slot;
    for (uint32_t i = 0; i < WQE_BYTES; i++) {
        w[i] = 0;
    }
    /* Control segment: opmod 31:24 | wqe_index 23:8 | opcode 7:0; qpn_ds: sqn 31:8 | ds 5:0 (16-byte units:
     * control 1 + Ethernet 2 (18 inline bytes spill into the second) + data 1); fm_ce_se 0x08: CQE always. */
    mlx5_set(w, 0x00, 23, 8, q->pc & 0xFFFFu);
    mlx5_set(w, 0x00, 7, 0, OPCODE_SEND);
    mlx5_set(w, 0x04, 31, 8, m->info.sqn);
    mlx5_set(w, 0x04, 5, 0, 4);
    mlx5_set(w, 0x08, 7, 0, 0x08);
    /* Ethernet segment (struct mlx5_wqe_eth_seg at 0x10): inline_hdr_sz 0x1C 31:16, inline_hdr_start 0x1E. */
    mlx5_set(w, 0x1C, 31, 16, INLINE_HDR);
    for (uint32_t i = 0; i < INLINE_HDR; i++) {
        w[0x1E + i] = buf[i];
    }
    /* Data segment (struct mlx5_wqe_data_seg at 0x30): byte_count, lkey, addr. */
    mlx5_set(w, 0x30, 31, 0, len - INLINE_HDR);
    mlx5_set(w, 0x34, 31, 0, m->info.reserved_lkey);
    mlx5_set64(w, 0x38, (uint64_t)(uintptr_t)(buf + INLINE_HDR));
    q->pc++;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    q->dbrec[1] = mlx5_be32(q->pc & 0xFFFFu);                          /* send doorbell record */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    /* The doorbell: the first 8 bytes of the control segment, one 64-bit store to the UAR page. */
    volatile uint64_t *db = (volatile uint64_t *)(uintptr_t)(m->bar + (size_t)m->info.uar * MLX5_PAGE + UAR_DB_OFFSET);
    uint64_t first = 0;
    for (int i = 7; i >= 0; i--) {
        first = first << 8 | w[i];                                     /* bytes in memory order */
    }
    *db = first;
    return MLX5_OK;
}

size_t mlx5_rx(struct mlx5 *m, uint8_t *buf, size_t capacity)
{
    struct mlx5_wq *q = &m->rq;
    const uint8_t *cqe = next_cqe(&m->rx_cq);
    if (!cqe) {
        return 0;
    }
    uint32_t opcode = cqe[0x3F] >> 4;
    uint32_t bytes = mlx5_get(cqe, 0x2C, 31, 0);                       /* byte_cnt */
    uint32_t slot = mlx5_get(cqe, 0x3C, 31, 16) & ((1u << q->log_size) - 1u);
    size_t n = 0;
    if (opcode == CQE_RESP_SEND && bytes <= capacity && bytes <= BUF_BYTES) {
        const uint8_t *src = q->buffers + (size_t)BUF_BYTES * slot;
        for (uint32_t i = 0; i < bytes; i++) {
            buf[i] = src[i];
        }
        n = bytes;
    } else if (opcode == CQE_RESP_ERR) {
        drv_logf("dte: mlx5 error=rx_completion syndrome=0x%x wqe=%u", cqe[0x37], slot);
    }
    consume_cqe(&m->rx_cq);
    q->pc++;                                                           /* cyclic RQ: the same buffer goes back */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    q->dbrec[0] = mlx5_be32(q->pc & 0xFFFFu);
    return n;
}
