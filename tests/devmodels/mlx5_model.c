/* Simulated mlx5 function: initialization segment, command interface and the firmware's commands (see
 * mlx5_model.h). Layouts: PRM "Initialization Segment", "Command Queue Entry", "Command Mailbox", and the Linux
 * mlx5_ifc.h *_in / *_out structs named at each handler. */
#define _GNU_SOURCE
#include "mlx5_model_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mmio_trap.h"

#define CMD_MAX (16u + 80u * 512u)
#define ST_BAD_OP 0x02
#define ST_BAD_PARAM 0x03
#define ST_BAD_SYS_STATE 0x04
#define ST_BAD_RESOURCE 0x05
#define ST_BAD_INPUT_LEN 0x50

void model_violation(struct mlx5_model *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    violation_log_addv(&m->violations, fmt, ap);
    va_end(ap);
}

static uint32_t rd32be(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static void wr32be(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v; }

uint32_t model_get(const uint8_t *p, uint32_t off, uint32_t hi, uint32_t lo)
{
    uint64_t mask = (1ull << (hi - lo + 1)) - 1;
    return (uint32_t)((rd32be(p + off) >> lo) & mask);
}

void model_put(uint8_t *p, uint32_t off, uint32_t hi, uint32_t lo, uint32_t v)
{
    uint32_t mask = (uint32_t)(((1ull << (hi - lo + 1)) - 1) << lo);
    wr32be(p + off, (rd32be(p + off) & ~mask) | ((v << lo) & mask));
}

uint64_t model_get64(const uint8_t *p, uint32_t off)
{
    return (uint64_t)rd32be(p + off) << 32 | rd32be(p + off + 4);
}

struct model_cq *model_find_cq(struct mlx5_model *m, uint32_t cqn)
{
    for (int i = 0; i < 4; i++)
        if (m->cq[i].live && m->cq[i].cqn == cqn)
            return &m->cq[i];
    return NULL;
}

/* --- command handlers: return a status; `why` names the broken rule for the violation log ----------------- */

struct ctx {
    struct mlx5_model *m;
    const uint8_t *in;
    uint8_t *out;
    uint32_t inlen, outlen;
    uint16_t op, op_mod;
};

static int fail(struct ctx *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct ctx *c, int status, const char *fmt, ...)
{
    char text[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    model_violation(c->m, "opcode 0x%x: %s", c->op, text);
    return status;
}

#define REQUIRE(cond, status, ...) do { if (!(cond)) return fail(c, status, __VA_ARGS__); } while (0)

/* A pas[] list at `off` for a buffer of `bytes` with 4 KiB pages (log_page_size 0). */
static int check_pas(struct ctx *c, uint32_t off, uint32_t bytes, uint64_t *base)
{
    uint32_t pages = (bytes + 4095) / 4096;
    REQUIRE(c->inlen >= off + 8 * pages, ST_BAD_INPUT_LEN, "inlen 0x%x lacks %u pas entries at 0x%x", c->inlen, pages, off);
    *base = model_get64(c->in, off);
    for (uint32_t i = 0; i < pages; i++) {
        uint64_t pa = model_get64(c->in, off + 8 * i);
        REQUIRE(pa && !(pa & 0xFFF), ST_BAD_PARAM, "pas[%u] 0x%llx not a 4 KiB page", i, (unsigned long long)pa);
        REQUIRE(pa == *base + 4096ull * i, ST_BAD_PARAM, "pas[%u] not contiguous (model limit)", i);
    }
    return 0;
}

static int after_init(struct ctx *c)
{
    REQUIRE(c->m->hca_inited, ST_BAD_SYS_STATE, "before INIT_HCA");
    return 0;
}

static int cmd_setup(struct ctx *c)
{
    struct mlx5_model *m = c->m;
    switch (c->op) {
    case 0x104: /* ENABLE_HCA: enable_hca_in function_id 0x08 15:0 */
        REQUIRE(!m->enabled, ST_BAD_SYS_STATE, "ENABLE_HCA twice");
        REQUIRE(model_get(c->in, 0x08, 15, 0) == 0, ST_BAD_PARAM, "function_id not 0");
        m->enabled = true;
        return 0;
    case 0x10A: /* QUERY_ISSI: query_issi_out current_issi 0x08 15:0, supported_issi_dw0 0x6C */
        REQUIRE(m->enabled, ST_BAD_SYS_STATE, "before ENABLE_HCA");
        REQUIRE(c->outlen >= 0x70, ST_BAD_INPUT_LEN, "outlen 0x%x < 0x70", c->outlen);
        model_put(c->out, 0x08, 15, 0, m->issi);
        model_put(c->out, 0x6C, 31, 0, m->cfg.supported_issi);
        m->issi_queried = true;
        return 0;
    case 0x10B: /* SET_ISSI: set_issi_in current_issi 0x08 15:0 */
        REQUIRE(m->issi_queried, ST_BAD_SYS_STATE, "SET_ISSI before QUERY_ISSI");
        REQUIRE(model_get(c->in, 0x08, 15, 0) < 32 && (m->cfg.supported_issi >> model_get(c->in, 0x08, 15, 0) & 1),
                ST_BAD_PARAM, "ISSI %u not supported", model_get(c->in, 0x08, 15, 0));
        m->issi = model_get(c->in, 0x08, 15, 0);
        return 0;
    case 0x107: { /* QUERY_PAGES: op_mod 1 boot, 2 init, 3 regular; query_pages_out num_pages 0x0C */
        REQUIRE(c->op_mod >= 1 && c->op_mod <= 3, ST_BAD_PARAM, "QUERY_PAGES op_mod %u", c->op_mod);
        REQUIRE(c->op_mod != 3 || m->hca_inited, ST_BAD_SYS_STATE, "QUERY_PAGES(regular) before INIT_HCA");
        REQUIRE(m->issi == 1, ST_BAD_SYS_STATE, "QUERY_PAGES before SET_ISSI(1)");
        REQUIRE(c->op_mod == 1 || m->cap_set, ST_BAD_SYS_STATE, "QUERY_PAGES(init) before SET_HCA_CAP");
        m->page_stage = c->op_mod;
        m->pages_queried[c->op_mod] = true;
        m->pages_wanted[c->op_mod] = c->op_mod == 1 ? m->cfg.boot_pages :
                                     c->op_mod == 2 ? m->cfg.init_pages : m->cfg.regular_pages;
        model_put(c->out, 0x0C, 31, 0, (uint32_t)m->pages_wanted[c->op_mod]);
        return 0;
    }
    case 0x108: { /* MANAGE_PAGES: op_mod 1 give; input_num_entries 0x0C; pas 0x10 + 8i */
        REQUIRE(c->op_mod == 1, ST_BAD_PARAM, "MANAGE_PAGES op_mod %u (only 1: give)", c->op_mod);
        REQUIRE(m->page_stage, ST_BAD_SYS_STATE, "MANAGE_PAGES before QUERY_PAGES");
        uint32_t n = model_get(c->in, 0x0C, 31, 0);
        REQUIRE(n > 0 && c->inlen == 0x10 + 8 * n, ST_BAD_INPUT_LEN, "inlen 0x%x for %u entries", c->inlen, n);
        for (uint32_t i = 0; i < n; i++) {
            uint64_t pa = model_get64(c->in, 0x10 + 8 * i);
            REQUIRE(pa && !(pa & 0xFFF), ST_BAD_PARAM, "page %u at 0x%llx not 4 KiB aligned", i, (unsigned long long)pa);
            for (int k = 0; k < m->page_count; k++)
                REQUIRE(m->page_addrs[k] != pa, ST_BAD_PARAM, "page 0x%llx given twice", (unsigned long long)pa);
            if (m->page_count < MODEL_MAX_PAGES)
                m->page_addrs[m->page_count++] = pa;
        }
        m->pages_given[m->page_stage] += (int32_t)n;
        REQUIRE(m->pages_given[m->page_stage] <= m->pages_wanted[m->page_stage], ST_BAD_PARAM,
                "%d pages given, QUERY_PAGES announced %d", m->pages_given[m->page_stage],
                m->pages_wanted[m->page_stage]);
        model_put(c->out, 0x08, 31, 0, n);
        return 0;
    }
    case 0x100: /* QUERY_HCA_CAP: op_mod type 15:1, current 0; capability at 0x10 (cmd_hca_cap) */
        REQUIRE(m->pages_queried[1] && m->pages_given[1] == m->pages_wanted[1], ST_BAD_SYS_STATE,
                "QUERY_HCA_CAP before the boot pages (%d of %d)", m->pages_given[1], m->pages_wanted[1]);
        REQUIRE((c->op_mod >> 1) == 0, ST_BAD_PARAM, "capability type %u", c->op_mod >> 1);
        REQUIRE(c->outlen >= 0x1010, ST_BAD_INPUT_LEN, "outlen 0x%x < 0x1010", c->outlen);
        model_put(c->out, 0x10 + 0x18, 23, 16, 22);          /* log_max_cq_sz */
        model_put(c->out, 0x10 + 0x34, 9, 8, m->cfg.port_type);
        model_put(c->out, 0x10 + 0x40, 15, 14, 1);           /* cmdif_checksum: the driver turns it off */
        model_put(c->out, 0x10 + 0x78, 4, 0, 16);            /* log_max_wq_sz */
        m->cap_queried = true;
        return 0;
    case 0x109: /* SET_HCA_CAP: op_mod type 15:1; capability at 0x10 */
        REQUIRE(m->cap_queried, ST_BAD_SYS_STATE, "SET_HCA_CAP before QUERY_HCA_CAP");
        REQUIRE(c->op_mod == 0, ST_BAD_PARAM, "op_mod %u (general capabilities are type 0)", c->op_mod);
        REQUIRE(c->inlen >= 0x1010, ST_BAD_INPUT_LEN, "inlen 0x%x < 0x1010", c->inlen);
        REQUIRE(model_get(c->in, 0x10 + 0x34, 9, 8) == m->cfg.port_type, ST_BAD_PARAM, "port_type changed");
        REQUIRE(model_get(c->in, 0x10 + 0x18, 23, 16) == 22, ST_BAD_PARAM, "log_max_cq_sz not echoed");
        REQUIRE(model_get(c->in, 0x10 + 0x40, 15, 14) == 0, ST_BAD_PARAM, "cmdif_checksum left on");
        m->cap_set = true;
        return 0;
    case 0x102: /* INIT_HCA */
        REQUIRE(m->cap_set, ST_BAD_SYS_STATE, "INIT_HCA before SET_HCA_CAP");
        REQUIRE(m->pages_queried[2] && m->pages_given[2] == m->pages_wanted[2], ST_BAD_SYS_STATE,
                "INIT_HCA before the init pages (%d of %d)", m->pages_given[2], m->pages_wanted[2]);
        REQUIRE(!m->hca_inited, ST_BAD_SYS_STATE, "INIT_HCA twice");
        m->hca_inited = true;
        return 0;
    }
    return -1;
}

static int cmd_objects(struct ctx *c)
{
    struct mlx5_model *m = c->m;
    int rc;
    switch (c->op) {
    case 0x203: /* QUERY_SPECIAL_CONTEXTS: resd_lkey 0x0C */
        if ((rc = after_init(c))) return rc;
        model_put(c->out, 0x0C, 31, 0, m->cfg.reserved_lkey);
        return 0;
    case 0x802: /* ALLOC_UAR: uar 0x08 23:0 */
        if ((rc = after_init(c))) return rc;
        m->uar_alloc = MLX5_MODEL_UAR;
        model_put(c->out, 0x08, 23, 0, MLX5_MODEL_UAR);
        return 0;
    case 0x800: /* ALLOC_PD: pd 0x08 23:0 */
        if ((rc = after_init(c))) return rc;
        m->pd_alloc = M_PD;
        model_put(c->out, 0x08, 23, 0, M_PD);
        return 0;
    case 0x816: /* ALLOC_TRANSPORT_DOMAIN: transport_domain 0x08 23:0 */
        if ((rc = after_init(c))) return rc;
        m->td_alloc = M_TD;
        model_put(c->out, 0x08, 23, 0, M_TD);
        return 0;
    case 0x754: /* QUERY_NIC_VPORT_CONTEXT: nic_vport_context 0x10, permanent_address at +0xF4 (47:0) */
        if ((rc = after_init(c))) return rc;
        REQUIRE(c->outlen >= 0x110, ST_BAD_INPUT_LEN, "outlen 0x%x < 0x110", c->outlen);
        memcpy(c->out + 0x10 + 0xF6, m->cfg.mac, 6);
        return 0;
    case 0x750: /* QUERY_VPORT_STATE: state 0x0C 3:0 */
        if ((rc = after_init(c))) return rc;
        model_put(c->out, 0x0C, 3, 0, m->cfg.link_up ? 1 : 0);
        return 0;
    case 0x301: { /* CREATE_EQ: eqc 0x10 (log_eq_size 0x0C 28:24, uar_page 0x0C 23:0), pas 0x110 */
        if ((rc = after_init(c))) return rc;
        uint32_t log = model_get(c->in, 0x10 + 0x0C, 28, 24);
        REQUIRE(model_get(c->in, 0x10 + 0x0C, 23, 0) == m->uar_alloc && m->uar_alloc, ST_BAD_RESOURCE, "EQ uar_page");
        REQUIRE(log >= 1 && log <= 22, ST_BAD_PARAM, "log_eq_size %u", log);
        uint64_t base;
        if ((rc = check_pas(c, 0x110, 64u << log, &base))) return rc;
        m->eq_live = true;
        model_put(c->out, 0x08, 7, 0, M_EQN);
        return 0;
    }
    case 0x400: { /* CREATE_CQ: cqc 0x10 (cqe_sz 0x00 23:21, log_cq_size 0x0C 28:24, uar_page 0x0C 23:0,
                     c_eqn 0x14 7:0, dbr_addr 0x38), pas 0x110 */
        if ((rc = after_init(c))) return rc;
        REQUIRE(m->eq_live && model_get(c->in, 0x10 + 0x14, 7, 0) == M_EQN, ST_BAD_RESOURCE, "CQ c_eqn names no EQ");
        REQUIRE(model_get(c->in, 0x10 + 0x0C, 23, 0) == m->uar_alloc, ST_BAD_RESOURCE, "CQ uar_page");
        REQUIRE(model_get(c->in, 0x10, 23, 21) == 0, ST_BAD_PARAM, "cqe_sz not 64 bytes");
        uint32_t log = model_get(c->in, 0x10 + 0x0C, 28, 24);
        uint64_t dbr = model_get64(c->in, 0x10 + 0x38), base;
        REQUIRE(log >= 1 && log <= 22, ST_BAD_PARAM, "log_cq_size %u", log);
        REQUIRE(dbr && !(dbr & 7), ST_BAD_PARAM, "CQ dbr_addr 0x%llx", (unsigned long long)dbr);
        if ((rc = check_pas(c, 0x110, 64u << log, &base))) return rc;
        int slot = 0;
        while (slot < 4 && m->cq[slot].live) slot++;
        REQUIRE(slot < 4, ST_BAD_RESOURCE, "too many CQs");
        m->cq[slot] = (struct model_cq){true, M_CQN0 + (uint32_t)slot, log, 0, base, dbr};
        model_put(c->out, 0x08, 23, 0, M_CQN0 + (uint32_t)slot);
        return 0;
    }
    case 0x912: /* CREATE_TIS: tisc 0x20, transport_domain +0x24 23:0 */
        if ((rc = after_init(c))) return rc;
        REQUIRE(model_get(c->in, 0x20 + 0x24, 23, 0) == m->td_alloc && m->td_alloc, ST_BAD_RESOURCE, "TIS transport_domain");
        m->tis_live = true;
        model_put(c->out, 0x08, 23, 0, M_TISN);
        return 0;
    }
    return -1;
}

/* CREATE_SQ / CREATE_RQ: context at 0x20, its wq at +0x30 (wq_type 31:28, pd 0x08, uar_page 0x0C, dbr_addr 0x10,
 * log_wq_stride 0x20 19:16, log_wq_sz 0x20 4:0, pas 0xC0). */
static int create_wq(struct ctx *c, struct model_wq *q, uint32_t want_stride, uint32_t num)
{
    struct mlx5_model *m = c->m;
    uint32_t wq = 0x20 + 0x30;
    int rc = after_init(c);
    if (rc) return rc;
    REQUIRE(model_find_cq(m, model_get(c->in, 0x20 + 0x08, 23, 0)), ST_BAD_RESOURCE, "cqn names no CQ");
    REQUIRE(model_get(c->in, 0x20, 31, 31) == 1, ST_BAD_PARAM, "rlky not set (buffers use the reserved lkey)");
    REQUIRE(model_get(c->in, 0x20, 23, 20) == 0, ST_BAD_PARAM, "initial state not RST");
    REQUIRE(model_get(c->in, wq, 31, 28) == 1, ST_BAD_PARAM, "wq_type not cyclic");
    REQUIRE(model_get(c->in, wq + 0x08, 23, 0) == m->pd_alloc && m->pd_alloc, ST_BAD_RESOURCE, "wq pd");
    uint32_t stride = model_get(c->in, wq + 0x20, 19, 16), log = model_get(c->in, wq + 0x20, 4, 0);
    REQUIRE(stride == want_stride, ST_BAD_PARAM, "log_wq_stride %u, want %u", stride, want_stride);
    REQUIRE(log >= 1 && log <= 16, ST_BAD_PARAM, "log_wq_sz %u", log);
    uint64_t dbr = model_get64(c->in, wq + 0x10), base;
    REQUIRE(dbr && !(dbr & 7), ST_BAD_PARAM, "wq dbr_addr");
    if ((rc = check_pas(c, wq + 0xC0, (1u << stride) << log, &base))) return rc;
    *q = (struct model_wq){true, num, model_get(c->in, 0x20 + 0x08, 23, 0), log, stride, 0, 0, base, dbr};
    model_put(c->out, 0x08, 23, 0, num);
    return 0;
}

/* MODIFY_SQ / MODIFY_RQ: current state 0x08 31:28, number 0x08 23:0, new state at context 0x20 23:20. */
static int modify_wq(struct ctx *c, struct model_wq *q)
{
    REQUIRE(q->live && model_get(c->in, 0x08, 23, 0) == q->num, ST_BAD_RESOURCE, "queue number 0x%x", model_get(c->in, 0x08, 23, 0));
    REQUIRE(model_get(c->in, 0x08, 31, 28) == q->state, ST_BAD_PARAM, "current state %u, queue is %u", model_get(c->in, 0x08, 31, 28), q->state);
    REQUIRE(q->state == 0 && model_get(c->in, 0x20, 23, 20) == 1, ST_BAD_PARAM, "transition not RST->RDY");
    q->state = 1;
    return 0;
}

static int cmd_queues(struct ctx *c)
{
    struct mlx5_model *m = c->m;
    int rc;
    switch (c->op) {
    case 0x904: /* CREATE_SQ: sqc tis_lst_sz 0x20 31:16, tis_num_0 0x2C 23:0 */
        REQUIRE(m->tis_live && model_get(c->in, 0x20 + 0x20, 31, 16) == 1 &&
                model_get(c->in, 0x20 + 0x2C, 23, 0) == M_TISN, ST_BAD_RESOURCE, "SQ TIS list");
        REQUIRE(model_get(c->in, 0x20 + 0x30 + 0x0C, 23, 0) == m->uar_alloc, ST_BAD_RESOURCE, "SQ uar_page");
        return create_wq(c, &m->sq, 6, M_SQN);
    case 0x905: return modify_wq(c, &m->sq);
    case 0x908: return create_wq(c, &m->rq, 4, M_RQN);
    case 0x909: return modify_wq(c, &m->rq);
    case 0x900: /* CREATE_TIR: tirc 0x20, disp_type +0x04 31:28, inline_rqn +0x1C, transport_domain +0x24 */
        if ((rc = after_init(c))) return rc;
        REQUIRE(model_get(c->in, 0x20 + 0x04, 31, 28) == 0, ST_BAD_PARAM, "TIR not direct");
        REQUIRE(m->rq.live && model_get(c->in, 0x20 + 0x1C, 23, 0) == M_RQN, ST_BAD_RESOURCE, "TIR inline_rqn");
        REQUIRE(model_get(c->in, 0x20 + 0x24, 23, 0) == m->td_alloc, ST_BAD_RESOURCE, "TIR transport_domain");
        m->tir_live = true;
        model_put(c->out, 0x08, 23, 0, M_TIRN);
        return 0;
    case 0x930: /* CREATE_FLOW_TABLE: table_type 0x10 31:24 (0 NIC RX), context 0x18 */
        if ((rc = after_init(c))) return rc;
        REQUIRE(model_get(c->in, 0x10, 31, 24) == 0, ST_BAD_PARAM, "table_type not NIC RX");
        REQUIRE(c->inlen >= 0x40, ST_BAD_INPUT_LEN, "inlen 0x%x", c->inlen);
        m->table_live = true;
        model_put(c->out, 0x08, 23, 0, M_TABLE);
        return 0;
    case 0x933: /* CREATE_FLOW_GROUP: table_id 0x14, start 0x1C, end 0x24, match_criteria_enable 0x3C */
        REQUIRE(m->table_live && model_get(c->in, 0x14, 23, 0) == M_TABLE, ST_BAD_RESOURCE, "group table_id");
        REQUIRE(c->inlen >= 0x400, ST_BAD_INPUT_LEN, "inlen 0x%x < 0x400", c->inlen);
        m->group_start = model_get(c->in, 0x1C, 31, 0);
        m->group_end = model_get(c->in, 0x24, 31, 0);
        REQUIRE(m->group_start <= m->group_end, ST_BAD_PARAM, "group range");
        m->group_live = true;
        model_put(c->out, 0x08, 23, 0, M_GROUP);
        return 0;
    case 0x936: { /* SET_FLOW_TABLE_ENTRY: table_id 0x14, flow_index 0x20, flow_context 0x40 */
        REQUIRE(m->group_live && model_get(c->in, 0x14, 23, 0) == M_TABLE, ST_BAD_RESOURCE, "entry table_id");
        REQUIRE(c->inlen >= 0x348, ST_BAD_INPUT_LEN, "inlen 0x%x < 0x348", c->inlen);
        uint32_t index = model_get(c->in, 0x20, 31, 0);
        REQUIRE(index >= m->group_start && index <= m->group_end, ST_BAD_PARAM, "flow_index outside the group");
        REQUIRE(model_get(c->in, 0x40 + 0x04, 31, 0) == M_GROUP, ST_BAD_RESOURCE, "group_id");
        REQUIRE(model_get(c->in, 0x40 + 0x0C, 15, 0) & 4, ST_BAD_PARAM, "action lacks FWD_DEST");
        REQUIRE(model_get(c->in, 0x40 + 0x10, 23, 0) == 1, ST_BAD_PARAM, "destination_list_size");
        REQUIRE(model_get(c->in, 0x40 + 0x300, 31, 24) == 2 && model_get(c->in, 0x40 + 0x300, 23, 0) == M_TIRN &&
                m->tir_live, ST_BAD_RESOURCE, "destination is not the TIR");
        m->fte_live = true;
        return 0;
    }
    case 0x92F: /* SET_FLOW_TABLE_ROOT: table_type 0x10, table_id 0x14 */
        REQUIRE(m->table_live && model_get(c->in, 0x14, 23, 0) == M_TABLE, ST_BAD_RESOURCE, "root table_id");
        m->root_set = true;
        return 0;
    }
    return -1;
}

static int execute(struct ctx *c)
{
    struct mlx5_model *m = c->m;
    if (m->fail_opcode && m->fail_opcode == c->op) {
        m->fail_opcode = 0;
        model_put(c->out, 0x04, 31, 0, m->fail_syndrome);
        return m->fail_status;
    }
    if (c->op != 0x104)
        REQUIRE(m->enabled, ST_BAD_SYS_STATE, "before ENABLE_HCA");
    int rc = cmd_setup(c);
    if (rc < 0) rc = cmd_objects(c);
    if (rc < 0) rc = cmd_queues(c);
    if (rc < 0) rc = fail(c, ST_BAD_OP, "unknown opcode");
    return rc;
}

/* --- command queue entry and mailboxes ----------------------------------------------------------------------- */

/* Walk a mailbox chain (struct mlx5_cmd_prot_block: data 0x000, next 0x230, block_num 0x238, token 0x23C 23:16)
 * for `len` bytes past the inline 16, copying in (to_buf) or out. Returns a delivery status (0 ok). */
static int mailboxes(struct mlx5_model *m, uint64_t ptr, uint8_t *buf, uint32_t len, uint8_t token, bool to_buf)
{
    for (uint32_t n = 0, done = 16; done < len; n++, done += 512) {
        if (!ptr || (ptr & 0x3FF)) {
            model_violation(m, "mailbox %u pointer 0x%llx not 1 KiB aligned", n, (unsigned long long)ptr);
            return to_buf ? 0x05 : 0x04;
        }
        uint8_t *mb = (uint8_t *)(uintptr_t)ptr;
        if (model_get(mb, 0x238, 31, 0) != n) {
            model_violation(m, "mailbox block_num %u, expected %u", model_get(mb, 0x238, 31, 0), n);
            return 0x03;
        }
        if (model_get(mb, 0x23C, 23, 16) != token) {
            model_violation(m, "mailbox %u token 0x%x, entry token 0x%x", n, model_get(mb, 0x23C, 23, 16), token);
            return 0x02;
        }
        uint32_t chunk = len - done < 512 ? len - done : 512;
        if (to_buf) memcpy(buf + done, mb, chunk);
        else memcpy(mb, buf + done, chunk);
        ptr = model_get64(mb, 0x230);
    }
    return 0;
}

/* Command queue entry (struct mlx5_cmd_layout): type 0x00 31:24, inlen 0x04, in_ptr 0x08, in inline 0x10,
 * out inline 0x20, out_ptr 0x30, outlen 0x38, 0x3C: token 31:24, status 7:1, ownership 0. */
static void run_entry(struct mlx5_model *m, uint8_t *e)
{
    static uint8_t in[CMD_MAX], out[CMD_MAX];
    uint32_t delivery = 0;
    if (!model_get(e, 0x3C, 0, 0))
        model_violation(m, "doorbell for an entry software owns");
    uint8_t token = (uint8_t)model_get(e, 0x3C, 31, 24);
    struct ctx c = {m, in, out, model_get(e, 0x04, 31, 0), model_get(e, 0x38, 31, 0), 0, 0};
    memset(in, 0, sizeof in);
    memset(out, 0, sizeof out);
    if (model_get(e, 0x00, 31, 24) != 0x7) {
        model_violation(m, "entry type 0x%x", model_get(e, 0x00, 31, 24));
        delivery = 0x10;
    } else if (c.inlen < 8 || c.inlen > CMD_MAX) {
        model_violation(m, "inlen 0x%x", c.inlen);
        delivery = 0x07;
    } else if (c.outlen < 8 || c.outlen > CMD_MAX) {
        model_violation(m, "outlen 0x%x", c.outlen);
        delivery = 0x08;
    }
    if (!delivery) {
        memcpy(in, e + 0x10, 16);
        delivery = (uint32_t)mailboxes(m, model_get64(e, 0x08), in, c.inlen, token, true);
    }
    if (!delivery) {
        c.op = (uint16_t)model_get(in, 0x00, 31, 16);
        c.op_mod = (uint16_t)model_get(in, 0x04, 15, 0);
        if (m->log_count < MODEL_LOG_CAP)
            m->log[m->log_count] = (uint32_t)c.op << 16 | c.op_mod;
        m->log_count++;
        int status = execute(&c);
        model_put(out, 0x00, 31, 24, (uint32_t)status);
        memcpy(e + 0x20, out, 16);
        delivery = (uint32_t)mailboxes(m, model_get64(e, 0x30), out, c.outlen, token, false);
    }
    model_put(e, 0x3C, 7, 1, delivery);
    __atomic_store_n(&e[0x3F], (uint8_t)(e[0x3F] & ~1u), __ATOMIC_RELEASE);   /* ownership back to software */
}

/* --- initialization segment (BAR hooks) ---------------------------------------------------------------------- */

static void iseg_refresh(void *ctx, uint32_t off, bool is_write)
{
    (void)is_write;
    struct mlx5_model *m = ctx;
    uint8_t *b = m->bar;
    wr32be(b + 0x00, (uint32_t)m->cfg.fw_minor << 16 | m->cfg.fw_major);
    wr32be(b + 0x04, (uint32_t)m->cfg.cmdif_rev << 16 | m->cfg.fw_subminor);
    wr32be(b + 0x10, m->cmdq_hi);
    wr32be(b + 0x14, (m->cmdq_lo & 0xFFFFF000u) | 5u << 4 | 6u);  /* log_cmdq_size 5, log_cmdq_stride 6 */
    wr32be(b + 0x18, 0);
    bool initializing = m->cfg.never_ready || m->init_left > 0;
    wr32be(b + 0x1FC, initializing ? 1u << 31 : 0);
    if (off == 0x1FC && !is_write && m->init_left)
        m->init_left--;
}

static void bar_written(void *ctx, uint32_t off, bool is_write)
{
    struct mlx5_model *m = ctx;
    if (!is_write)
        return;
    if (off == 0x10) {
        m->cmdq_hi = rd32be(m->bar + 0x10);
        m->cmdq_hi_written = true;
    } else if (off == 0x14) {
        if (!m->cmdq_hi_written)
            model_violation(m, "cmdq_phy_addr low dword written before the high dword");
        m->cmdq_lo = rd32be(m->bar + 0x14);
        if (m->cmdq_lo & 0xFFF)
            model_violation(m, "cmdq_phy_addr low bits 0x%x not zero (nic_interface/sizes)", m->cmdq_lo & 0xFFF);
        m->cmdq_set = true;
        m->init_left = m->cfg.init_reads;
    } else if (off == 0x18) {
        uint32_t bell = rd32be(m->bar + 0x18);
        if (!m->cmdq_set || m->cfg.never_ready || m->init_left) {
            model_violation(m, "command doorbell before the command queue is ready");
            return;
        }
        uint8_t *q = (uint8_t *)(uintptr_t)((uint64_t)m->cmdq_hi << 32 | (m->cmdq_lo & 0xFFFFF000u));
        for (int i = 0; i < 32; i++)
            if (bell >> i & 1)
                run_entry(m, q + 64 * i);
    } else if (off >= MLX5_MODEL_UAR * 4096u && off < (MLX5_MODEL_UAR + 1) * 4096u) {
        model_uar_write(m, off - MLX5_MODEL_UAR * 4096u);
    } else {
        model_violation(m, "write to BAR offset 0x%x", off);
    }
}

/* --- public -------------------------------------------------------------------------------------------------- */

struct mlx5_model *mlx5_model_create(const struct mlx5_model_config *cfg)
{
    struct mlx5_model *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->cfg = *cfg;
    m->bar = mmio_trap_alloc(MLX5_MODEL_BAR_SIZE);
    if (!m->bar) {
        free(m);
        return NULL;
    }
    m->init_left = cfg->init_reads;
    mmio_trap_register(m->bar, MLX5_MODEL_BAR_SIZE, iseg_refresh, bar_written, m);
    return m;
}

void mlx5_model_destroy(struct mlx5_model *m)
{
    mmio_trap_unregister(m->bar);
    mmio_trap_free(m->bar, MLX5_MODEL_BAR_SIZE);
    free(m);
}

void *mlx5_model_bar(struct mlx5_model *m) { return m->bar; }

void mlx5_model_fail(struct mlx5_model *m, uint16_t opcode, uint8_t status, uint32_t syndrome)
{
    m->fail_opcode = opcode;
    m->fail_status = status;
    m->fail_syndrome = syndrome;
}

int mlx5_model_command_log(struct mlx5_model *m, uint32_t *out, int cap)
{
    for (int i = 0; i < m->log_count && i < cap && i < MODEL_LOG_CAP; i++)
        out[i] = m->log[i];
    return m->log_count;
}

void mlx5_model_pages(struct mlx5_model *m, int32_t out[6])
{
    for (int i = 0; i < 3; i++) {
        out[i] = m->pages_given[i + 1];
        out[3 + i] = m->pages_wanted[i + 1];
    }
}

int mlx5_model_violations(struct mlx5_model *m, char *buf, size_t cap)
{
    return violation_log_copy(&m->violations, buf, cap);
}
