/* Simulated mlx5 data movement (see mlx5_model.h): send WQEs read when the UAR doorbell is rung, receive WQEs
 * filled by injected frames, CQEs written with the owner bit of the producer's pass. Layouts: PRM "Send WQE Format"
 * (struct mlx5_wqe_ctrl_seg, mlx5_wqe_eth_seg, mlx5_wqe_data_seg), "Receive WQE", "Completion Queue Entry"
 * (struct mlx5_cqe64: byte_cnt 0x2C, wqe_counter 0x3C, op_own 0x3F). */
#define _GNU_SOURCE
#include "mlx5_model_internal.h"

#include <string.h>

#define CQE_REQ 0x0u
#define CQE_RESP_SEND 0x2u

static uint8_t *host(uint64_t addr) { return (uint8_t *)(uintptr_t)addr; }

/* Write one CQE; the consumer index comes from the CQ's doorbell record (dbrec[0] 23:0). */
static void post_cqe(struct mlx5_model *m, uint32_t cqn, uint32_t opcode, uint32_t wqe_counter, uint32_t bytes)
{
    struct model_cq *cq = model_find_cq(m, cqn);
    if (!cq) {
        model_violation(m, "completion for a missing CQ 0x%x", cqn);
        return;
    }
    uint32_t size = 1u << cq->log_size;
    uint32_t ci = model_get(host(cq->dbr), 0, 23, 0);
    if (((cq->pi - ci) & 0xFFFFFFu) >= size) {
        model_violation(m, "CQ 0x%x overflow: producer %u, consumer %u, size %u", cqn, cq->pi, ci, size);
        return;
    }
    uint8_t *cqe = host(cq->base + 64ull * (cq->pi & (size - 1)));
    memset(cqe, 0, 63);
    model_put(cqe, 0x2C, 31, 0, bytes);
    model_put(cqe, 0x3C, 31, 16, wqe_counter & 0xFFFFu);
    uint8_t owner = (uint8_t)((cq->pi >> cq->log_size) & 1u);
    __atomic_store_n(&cqe[0x3F], (uint8_t)(opcode << 4 | owner), __ATOMIC_RELEASE);
    cq->pi++;
}

static void store_tx(struct mlx5_model *m, const uint8_t *frame, size_t size)
{
    if (m->tx_count == MODEL_TX_SLOTS) {
        model_violation(m, "test did not collect transmitted frames");
        return;
    }
    unsigned slot = (m->tx_head + m->tx_count++) % MODEL_TX_SLOTS;
    memcpy(m->tx[slot], frame, size);
    m->tx_len[slot] = size;
}

/* One send WQE: control (opmod_idx_opcode 0x00, qpn_ds 0x04, fm_ce_se 0x08), Ethernet segment at 0x10
 * (inline_hdr_sz 0x1C 31:16, inline data from 0x1E), then data segments (byte_count, lkey, addr) to ds * 16. */
static void send_one(struct mlx5_model *m, const uint8_t *w, uint32_t index)
{
    uint8_t frame[MODEL_FRAME_MAX];
    uint32_t opcode = model_get(w, 0x00, 7, 0), ds = model_get(w, 0x04, 5, 0);
    if (opcode != 0x0A || model_get(w, 0x00, 23, 8) != (index & 0xFFFFu) || model_get(w, 0x04, 31, 8) != m->sq.num) {
        model_violation(m, "send WQE %u: opcode 0x%x index %u sqn 0x%x", index, opcode, model_get(w, 0x00, 23, 8),
                        model_get(w, 0x04, 31, 8));
        return;
    }
    uint32_t ihs = model_get(w, 0x1C, 31, 16);
    uint32_t first_data = (0x1E + ihs + 15) & ~15u;
    if (ihs < 14 || ds * 16 > 64 || first_data > ds * 16) {
        model_violation(m, "send WQE %u: inline_hdr_sz %u, ds %u (L2 inline needs >= 14; one 64-byte WQEBB)", index,
                        ihs, ds);
        return;
    }
    memcpy(frame, w + 0x1E, ihs);
    size_t len = ihs;
    for (uint32_t off = first_data; off < ds * 16; off += 16) {
        uint32_t bytes = model_get(w, off, 31, 0), lkey = model_get(w, off + 4, 31, 0);
        if (lkey != m->cfg.reserved_lkey || len + bytes > sizeof frame) {
            model_violation(m, "send WQE %u data segment: lkey 0x%x (reserved 0x%x), %u bytes", index, lkey,
                            m->cfg.reserved_lkey, bytes);
            return;
        }
        memcpy(frame + len, host(model_get64(w, off + 8)), bytes);
        len += bytes;
    }
    store_tx(m, frame, len);
    if (model_get(w, 0x08, 3, 2) == 2)                     /* CQ update: always */
        post_cqe(m, m->sq.cqn, CQE_REQ, index, 0);
}

/* UAR doorbell at 0x800: the first 8 bytes of the last control segment. The WQEs to run are those before the
 * send doorbell record's counter (dbrec[1] 15:0). */
void model_uar_write(struct mlx5_model *m, uint32_t off)
{
    if (off != 0x800) {
        model_violation(m, "UAR write at 0x%x (doorbell is 0x800)", off);
        return;
    }
    const uint8_t *bell = m->bar + MLX5_MODEL_UAR * 4096u + 0x800;
    if (!m->sq.live || m->sq.state != 1 || model_get(bell, 0x04, 31, 8) != m->sq.num) {
        model_violation(m, "send doorbell for sqn 0x%x (SQ live %d state %u)", model_get(bell, 0x04, 31, 8),
                        m->sq.live, m->sq.state);
        return;
    }
    uint32_t producer = model_get(host(m->sq.dbr), 4, 15, 0);
    uint32_t size = 1u << m->sq.log_size;
    if (((producer - m->sq.ci) & 0xFFFFu) > size)
        model_violation(m, "send doorbell record %u is more than a ring ahead of %u", producer, m->sq.ci);
    while ((m->sq.ci & 0xFFFFu) != producer) {
        send_one(m, host(m->sq.base + 64ull * (m->sq.ci & (size - 1))), m->sq.ci);
        m->sq.ci++;
    }
}

/* Receive: the flow table forwards everything to the TIR and its RQ; the next WQE (one data segment:
 * byte_count 0x00, lkey 0x04, addr 0x08) takes the frame if the receive doorbell record (dbrec[0] 15:0) posted it. */
int mlx5_model_inject(struct mlx5_model *m, const uint8_t *frame, size_t size)
{
    struct model_wq *q = &m->rq;
    if (!m->root_set || !m->fte_live || !q->live || q->state != 1)
        return -1;
    uint32_t posted = model_get(host(q->dbr), 0, 15, 0);
    if ((q->ci & 0xFFFFu) == posted)
        return -1;
    uint8_t *w = host(q->base + ((uint64_t)(q->ci & ((1u << q->log_size) - 1)) << q->log_stride));
    uint32_t room = model_get(w, 0x00, 31, 0), lkey = model_get(w, 0x04, 31, 0);
    if (lkey != m->cfg.reserved_lkey || room < size) {
        model_violation(m, "receive WQE %u: lkey 0x%x, %u bytes for a %zu-byte frame", q->ci, lkey, room, size);
        return -1;
    }
    memcpy(host(model_get64(w, 0x08)), frame, size);
    post_cqe(m, q->cqn, CQE_RESP_SEND, q->ci, (uint32_t)size);
    q->ci++;
    return 0;
}

size_t mlx5_model_take_tx(struct mlx5_model *m, uint8_t *buf, size_t cap)
{
    if (!m->tx_count)
        return 0;
    size_t n = m->tx_len[m->tx_head] < cap ? m->tx_len[m->tx_head] : cap;
    memcpy(buf, m->tx[m->tx_head], n);
    m->tx_head = (m->tx_head + 1) % MODEL_TX_SLOTS;
    m->tx_count--;
    return n;
}
