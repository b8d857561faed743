/* Simulated NVMe controller (see nvme_model.h). Register offsets and layouts are taken from the NVMe Base
 * Specification 2.0 (section 3.1.3 properties, 4.2 SQE, 4.3 PRPs, 4.6 CQE, 5.x admin commands) and the NVM Command
 * Set 1.0 (Read, Identify Namespace), deliberately not from the driver's headers. */
#define _POSIX_C_SOURCE 200809L
#include "nvme_model.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "violation_log.h"

#define MAXQ 65                        /* admin + 64 I/O queues */
#define BAR_BYTES (64u * 1024u)

struct mq {                            /* one queue as the controller sees it */
    bool live;
    uint64_t base;
    uint32_t size;
    uint32_t ptr;                      /* SQ: head (next to fetch); CQ: tail (next to post) */
    uint32_t host_head;                /* CQ: last head doorbell value */
    uint32_t phase;                    /* CQ */
    uint32_t cqid;                     /* SQ: its CQ */
    uint8_t cid_busy[65536 / 8];       /* SQ: CIDs submitted but not yet completed */
};

struct pending {                       /* a completion waiting to be posted (reorder batches) */
    uint32_t dw0, sqid, cid, status, drop;
};

struct nvme_model {
    struct nvme_model_config cfg;
    uint8_t *bar;
    pthread_t thread;
    pthread_mutex_t lock;
    volatile int stop;
    bool enabled;
    uint64_t enable_at_ns;
    bool enabling;
    bool fatal;
    uint32_t page_shift;
    uint32_t granted_sq, granted_cq;
    struct mq sq[MAXQ], cq[MAXQ];
    int fault_kind;
    uint64_t fault_after;
    uint32_t fault_sct, fault_sc;
    struct nvme_model_stats stats;
    struct violation_log violations;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void violation(struct nvme_model *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&m->lock);
    violation_log_addv(&m->violations, fmt, ap);
    pthread_mutex_unlock(&m->lock);
    va_end(ap);
}

static uint32_t reg32(struct nvme_model *m, uint32_t off)
{
    return __atomic_load_n((uint32_t *)(m->bar + off), __ATOMIC_ACQUIRE);
}

static void set_reg32(struct nvme_model *m, uint32_t off, uint32_t v)
{
    __atomic_store_n((uint32_t *)(m->bar + off), v, __ATOMIC_RELEASE);
}

static uint64_t reg64(struct nvme_model *m, uint32_t off)
{
    return (uint64_t)reg32(m, off) | ((uint64_t)reg32(m, off + 4) << 32);
}

static uint32_t stride(struct nvme_model *m)
{
    return 4u << m->cfg.dstrd;
}

static uint32_t sq_doorbell(struct nvme_model *m, uint32_t q) { return 0x1000u + 2u * q * stride(m); }
static uint32_t cq_doorbell(struct nvme_model *m, uint32_t q) { return 0x1000u + (2u * q + 1u) * stride(m); }

static void write_capabilities(struct nvme_model *m)
{
    /* CAP (Figure 36): MQES 15:0, CQR 16 (contiguous queues required), TO 31:24, DSTRD 35:32, CSS 44:37 (bit 37
     * NVM), MPSMIN 51:48 = 0 (4 KiB), MPSMAX 55:52 = 4 (64 KiB). */
    uint64_t cap = (uint64_t)m->cfg.mqes | (1ull << 16) | ((uint64_t)m->cfg.cap_to << 24) |
                   ((uint64_t)m->cfg.dstrd << 32) | (1ull << 37) | (4ull << 52);
    set_reg32(m, 0x00, (uint32_t)cap);
    set_reg32(m, 0x04, (uint32_t)(cap >> 32));
    set_reg32(m, 0x08, 0x00020000u); /* VS 2.0.0 */
}

static void reset_state(struct nvme_model *m)
{
    memset(m->sq, 0, sizeof m->sq);
    memset(m->cq, 0, sizeof m->cq);
    m->enabled = m->enabling = false;
    m->granted_sq = m->granted_cq = 0;
    set_reg32(m, 0x1C, m->fatal ? 2u : 0u);
    for (uint32_t q = 0; q < MAXQ; q++) {
        set_reg32(m, sq_doorbell(m, q), 0);
        set_reg32(m, cq_doorbell(m, q), 0);
    }
}

/* --- DMA through PRPs (section 4.3) ------------------------------------------------------------------------ */

static bool prp_copy_out(struct nvme_model *m, uint64_t prp1, uint64_t prp2, const uint8_t *src, uint64_t len,
                         bool *used_list)
{
    uint64_t page = 1ull << m->page_shift;
    *used_list = false;
    if (prp1 & 3u) {
        violation(m, "PRP1 0x%llx is not dword aligned", (unsigned long long)prp1);
        return false;
    }
    uint64_t first = page - (prp1 & (page - 1));
    if (first > len)
        first = len;
    memcpy((void *)(uintptr_t)prp1, src, first);
    uint64_t done = first;
    if (done == len)
        return true;
    if (len - done <= page) {
        if (prp2 & (page - 1)) {
            violation(m, "PRP2 0x%llx (second data page) has a page offset", (unsigned long long)prp2);
            return false;
        }
        memcpy((void *)(uintptr_t)prp2, src + done, len - done);
        return true;
    }
    *used_list = true;
    if (prp2 & 7u) {
        violation(m, "PRP list pointer 0x%llx is not qword aligned", (unsigned long long)prp2);
        return false;
    }
    const uint64_t *list = (const uint64_t *)(uintptr_t)prp2;
    uint64_t slot = (prp2 & (page - 1)) / 8u, per_page = page / 8u;
    while (done < len) {
        uint64_t e = list[0];
        if (slot == per_page - 1u && len - done > page) { /* last entry of a list page chains to the next list */
            list = (const uint64_t *)(uintptr_t)e;
            slot = 0;
            continue;
        }
        if (e == 0 || (e & (page - 1))) {
            violation(m, "PRP list entry 0x%llx is not page aligned", (unsigned long long)e);
            return false;
        }
        uint64_t n = len - done < page ? len - done : page;
        memcpy((void *)(uintptr_t)e, src + done, n);
        done += n;
        list++;
        slot++;
    }
    return true;
}

/* --- admin commands (Figure 138) --------------------------------------------------------------------------- */

#define ST(sct, sc) (((uint32_t)(sct) << 8) | (uint32_t)(sc))

static void pad_ascii(uint8_t *dst, const char *s, size_t n)
{
    memset(dst, ' ', n);
    memcpy(dst, s, strnlen(s, n));
}

static uint32_t admin_identify(struct nvme_model *m, const uint32_t *sqe)
{
    uint8_t data[4096] = {0};
    uint32_t cns = sqe[10] & 0xFFu, nsid = sqe[1];
    if (cns == 1) { /* Identify Controller, Figure 275 */
        data[0] = (uint8_t)m->cfg.vendor_id;
        data[1] = (uint8_t)(m->cfg.vendor_id >> 8);
        pad_ascii(data + 4, m->cfg.serial, 20);
        pad_ascii(data + 24, m->cfg.model, 40);
        pad_ascii(data + 64, "1.0", 8);
        data[77] = (uint8_t)m->cfg.mdts;
        data[512] = 0x66; /* SQES: required and max 2^6 */
        data[513] = 0x44; /* CQES: 2^4 */
        data[516] = 1;    /* NN */
    } else if (cns == 0) { /* Identify Namespace, NVM CS Figure 97 */
        if (nsid != 1)
            return ST(0, 0x0B);
        uint64_t nsze = m->cfg.nsze;
        for (int i = 0; i < 8; i++) {
            data[i] = (uint8_t)(nsze >> (8 * i));      /* NSZE */
            data[8 + i] = (uint8_t)(nsze >> (8 * i));  /* NCAP */
            data[16 + i] = (uint8_t)(nsze >> (8 * i)); /* NUSE */
        }
        uint32_t idx = m->cfg.lbaf_index;
        data[25] = (uint8_t)(idx < 16 ? 15 : 63);       /* NLBAF, 0's based */
        data[26] = (uint8_t)((idx & 0xF) | ((idx >> 4) << 5));
        for (uint32_t f = 0; f <= data[25] && f < 64; f++) /* decoys: 4 KiB with 8 bytes metadata */
            data[128 + 4 * f + 2] = 12, data[128 + 4 * f] = 8;
        data[128 + 4 * idx] = 0;                        /* MS = 0 */
        data[128 + 4 * idx + 2] = (uint8_t)m->cfg.lba_shift;
    } else if (cns == 2) {
        if (nsid < 1)
            data[0] = 1; /* active namespace list: {1} */
    } else {
        return ST(0, 0x02);
    }
    bool list;
    return prp_copy_out(m, ((uint64_t)sqe[7] << 32) | sqe[6], ((uint64_t)sqe[9] << 32) | sqe[8], data, 4096, &list)
               ? 0 : ST(0, 0x04);
}

static uint32_t admin_set_features(struct nvme_model *m, const uint32_t *sqe, uint32_t *dw0)
{
    if ((sqe[10] & 0xFFu) != 0x07)
        return ST(0, 0x02);
    uint32_t nsqr = (sqe[11] & 0xFFFFu) + 1u, ncqr = (sqe[11] >> 16) + 1u;
    if (nsqr == 0x10000u || ncqr == 0x10000u)
        return ST(0, 0x02);
    m->granted_sq = nsqr < m->cfg.max_io_queues ? nsqr : m->cfg.max_io_queues;
    m->granted_cq = ncqr < m->cfg.max_io_queues ? ncqr : m->cfg.max_io_queues;
    *dw0 = ((m->granted_cq - 1u) << 16) | (m->granted_sq - 1u);
    return 0;
}

static uint32_t admin_create_queue(struct nvme_model *m, const uint32_t *sqe, bool is_sq)
{
    uint32_t qid = sqe[10] & 0xFFFFu, size = (sqe[10] >> 16) + 1u;
    uint64_t base = ((uint64_t)sqe[7] << 32) | sqe[6];
    uint32_t cc = reg32(m, 0x14);
    const char *what = is_sq ? "SQ" : "CQ";
    uint32_t granted = is_sq ? m->granted_sq : m->granted_cq;
    struct mq *q = is_sq ? &m->sq[qid] : &m->cq[qid];

    if (qid == 0 || qid > granted || qid >= MAXQ || q->live) {
        violation(m, "create I/O %s qid=%u not allowed (granted %u, live %d)", what, qid, granted,
                  qid < MAXQ ? q->live : 0);
        return ST(1, 0x01);
    }
    if (size < 2 || size > m->cfg.mqes + 1u) {
        violation(m, "create I/O %s qid=%u size %u outside 2..CAP.MQES+1=%u", what, qid, size, m->cfg.mqes + 1u);
        return ST(1, 0x02);
    }
    if (!(sqe[11] & 1u)) {
        violation(m, "create I/O %s qid=%u without PC=1 although CAP.CQR=1", what, qid);
        return ST(0, 0x02);
    }
    if (base == 0 || (base & ((1ull << m->page_shift) - 1))) {
        violation(m, "create I/O %s qid=%u base 0x%llx not page aligned", what, qid, (unsigned long long)base);
        return ST(0, 0x13);
    }
    if (((cc >> 16) & 0xF) != 6 || ((cc >> 20) & 0xF) != 4)
        violation(m, "I/O queue created with CC.IOSQES=%u CC.IOCQES=%u (need 6 and 4)", (cc >> 16) & 0xF,
                  (cc >> 20) & 0xF);
    if (is_sq) {
        uint32_t cqid = sqe[11] >> 16;
        if (cqid == 0 || cqid >= MAXQ || !m->cq[cqid].live) {
            violation(m, "create I/O SQ qid=%u on CQ %u that does not exist", qid, cqid);
            return ST(1, 0x00);
        }
        q->cqid = cqid;
    } else {
        q->phase = 1;
    }
    q->live = true;
    q->base = base;
    q->size = size;
    q->ptr = 0;
    m->stats.io_queues_created += is_sq;
    return 0;
}

static uint32_t run_admin(struct nvme_model *m, const uint32_t *sqe, uint32_t *dw0)
{
    m->stats.admin_commands++;
    switch (sqe[0] & 0xFFu) {
    case 0x06: return admin_identify(m, sqe);
    case 0x09: return admin_set_features(m, sqe, dw0);
    case 0x05: return admin_create_queue(m, sqe, false);
    case 0x01: return admin_create_queue(m, sqe, true);
    default: return ST(0, 0x01);
    }
}

/* --- I/O commands ------------------------------------------------------------------------------------------ */

static uint32_t run_read(struct nvme_model *m, const uint32_t *sqe)
{
    if (sqe[1] != 1)
        return ST(0, 0x0B);
    uint64_t slba = ((uint64_t)sqe[11] << 32) | sqe[10];
    uint64_t nlb = (sqe[12] & 0xFFFFu) + 1u;
    if (slba >= m->cfg.nsze || nlb > m->cfg.nsze - slba)
        return ST(0, 0x80);
    uint64_t bytes = nlb << m->cfg.lba_shift;
    if (m->cfg.mdts && bytes > (1ull << (12u + m->cfg.mdts))) {
        violation(m, "Read of %llu bytes exceeds MDTS (%llu)", (unsigned long long)bytes,
                  (unsigned long long)(1ull << (12u + m->cfg.mdts)));
        return ST(0, 0x02);
    }
    bool list;
    if (!prp_copy_out(m, ((uint64_t)sqe[7] << 32) | sqe[6], ((uint64_t)sqe[9] << 32) | sqe[8],
                      m->cfg.backing + (slba << m->cfg.lba_shift), bytes, &list))
        return ST(0, 0x04);
    m->stats.bytes_read += bytes;
    m->stats.prp_list_commands += list;
    if (bytes > m->stats.max_transfer)
        m->stats.max_transfer = (uint32_t)bytes;
    return 0;
}

/* Returns the status; sets *drop when the completion must never be posted. */
static uint32_t run_io(struct nvme_model *m, const uint32_t *sqe, bool *drop)
{
    uint64_t n = m->stats.io_commands++;
    if (m->fault_kind && n == m->fault_after) {
        if (m->fault_kind == MODEL_FAULT_STATUS)
            return ST(m->fault_sct, m->fault_sc);
        if (m->fault_kind == MODEL_FAULT_DROP) {
            *drop = true;
            return 0;
        }
        if (m->fault_kind == MODEL_FAULT_FATAL) {
            m->fatal = true;
            set_reg32(m, 0x1C, reg32(m, 0x1C) | 2u);
            *drop = true;
            return 0;
        }
    }
    if (((sqe[0] >> 8) & 3u) || ((sqe[0] >> 14) & 3u))
        violation(m, "I/O command uses FUSE/PSDT (cdw0=0x%x); only plain PRP commands expected", sqe[0]);
    switch (sqe[0] & 0xFFu) {
    case 0x02: return run_read(m, sqe);
    case 0x00: return 0; /* Flush */
    default: return ST(0, 0x01);
    }
}

/* --- queues, completions, the controller thread ------------------------------------------------------------ */

static bool post(struct nvme_model *m, const struct pending *p, uint32_t sq_head)
{
    struct mq *sq = &m->sq[p->sqid];
    sq->cid_busy[p->cid / 8] &= (uint8_t)~(1u << (p->cid % 8));
    if (p->drop)
        return true;
    struct mq *cq = &m->cq[p->sqid == 0 ? 0 : sq->cqid];
    uint32_t head = reg32(m, cq_doorbell(m, p->sqid == 0 ? 0 : sq->cqid));
    if (head >= cq->size) {
        violation(m, "CQ head doorbell %u beyond queue size %u", head, cq->size);
        return false;
    }
    if ((cq->ptr + 1u) % cq->size == head) {
        violation(m, "completion queue %u overflow: host has more commands in flight than CQ slots",
                  p->sqid == 0 ? 0 : sq->cqid);
        return false;
    }
    /* CQE (Figure 92): DW0, DW1, SQHD|SQID, CID|P|status; the phase-carrying dword is stored last. */
    uint32_t *e = (uint32_t *)(uintptr_t)(cq->base + 16ull * cq->ptr);
    e[0] = p->dw0;
    e[1] = 0;
    e[2] = (sq_head & 0xFFFFu) | (p->sqid << 16);
    __atomic_store_n(&e[3], p->cid | ((p->status << 1 | cq->phase) << 16), __ATOMIC_RELEASE);
    if (++cq->ptr == cq->size) {
        cq->ptr = 0;
        cq->phase ^= 1u;
    }
    return true;
}

/* Fetch and run what the host queued on SQ `qid`; returns how many commands ran. */
static uint32_t service_sq(struct nvme_model *m, uint32_t qid)
{
    struct mq *sq = &m->sq[qid];
    uint32_t tail = reg32(m, sq_doorbell(m, qid));
    if (tail >= sq->size) {
        violation(m, "SQ %u tail doorbell %u beyond queue size %u", qid, tail, sq->size);
        m->fatal = true;
        set_reg32(m, 0x1C, reg32(m, 0x1C) | 2u);
        return 0;
    }
    uint32_t pending_n = (tail + sq->size - sq->ptr) % sq->size;
    if (qid && pending_n > m->stats.max_outstanding)
        m->stats.max_outstanding = pending_n;
    uint32_t batch = m->cfg.reorder > 1 ? m->cfg.reorder : 1, ran = 0;
    struct pending done[64];
    while (sq->ptr != tail && !m->fatal) {
        uint32_t n = 0;
        while (sq->ptr != tail && n < batch && n < 64 && !m->fatal) {
            uint32_t sqe[16];
            memcpy(sqe, (const void *)(uintptr_t)(sq->base + 64ull * sq->ptr), sizeof sqe);
            sq->ptr = (sq->ptr + 1u) % sq->size;
            uint32_t cid = sqe[0] >> 16, dw0 = 0;
            bool drop = false;
            if (sq->cid_busy[cid / 8] & (1u << (cid % 8)))
                violation(m, "SQ %u: CID %u reused while still outstanding", qid, cid);
            sq->cid_busy[cid / 8] |= (uint8_t)(1u << (cid % 8));
            uint32_t st = qid == 0 ? run_admin(m, sqe, &dw0) : run_io(m, sqe, &drop);
            done[n++] = (struct pending){dw0, qid, cid, st, drop};
        }
        for (uint32_t i = n; i-- > 0;) /* reverse order: the host must match completions by CID */
            if (!post(m, &done[i], sq->ptr))
                return ran;
        ran += n;
    }
    return ran;
}

static void check_stray_doorbells(struct nvme_model *m)
{
    for (uint32_t q = 1; q < MAXQ; q++) {
        if (!m->sq[q].live && reg32(m, sq_doorbell(m, q)) != 0) {
            violation(m, "doorbell written for SQ %u, which does not exist", q);
            set_reg32(m, sq_doorbell(m, q), 0);
        }
        if (!m->cq[q].live && reg32(m, cq_doorbell(m, q)) != 0) {
            violation(m, "doorbell written for CQ %u, which does not exist", q);
            set_reg32(m, cq_doorbell(m, q), 0);
        }
    }
}

static void start_enable(struct nvme_model *m, uint32_t cc)
{
    uint32_t aqa = reg32(m, 0x24);
    uint64_t asq = reg64(m, 0x28), acq = reg64(m, 0x30);
    uint32_t mps = (cc >> 7) & 0xFu;
    if (mps > 4u)
        violation(m, "CC.MPS=%u outside CAP.MPSMIN..MPSMAX (0..4)", mps);
    if ((cc >> 4) & 7u)
        violation(m, "CC.CSS=%u: only the NVM command set (0) is supported", (cc >> 4) & 7u);
    m->page_shift = 12u + mps;
    uint32_t sqs = (aqa & 0xFFFu) + 1u, cqs = ((aqa >> 16) & 0xFFFu) + 1u;
    if (sqs < 2 || cqs < 2)
        violation(m, "AQA admin queue sizes %u/%u below 2", sqs, cqs);
    if (!asq || !acq || (asq & 0xFFFu) || (acq & 0xFFFu))
        violation(m, "ASQ 0x%llx / ACQ 0x%llx missing or not 4 KiB aligned", (unsigned long long)asq,
                  (unsigned long long)acq);
    m->sq[0] = (struct mq){.live = true, .base = asq, .size = sqs};
    m->cq[0] = (struct mq){.live = true, .base = acq, .size = cqs, .phase = 1};
    m->enabling = true;
    m->enable_at_ns = now_ns() + (uint64_t)m->cfg.ready_delay_us * 1000u;
}

static void *controller_thread(void *arg)
{
    struct nvme_model *m = arg;
    while (!m->stop) {
        uint32_t cc = reg32(m, 0x14), work = 0;
        bool en = cc & 1u;
        if (en && !m->enabled && !m->enabling && !m->fatal)
            start_enable(m, cc);
        if (!en && (m->enabled || m->enabling)) {
            reset_state(m);
        }
        if (m->enabling && now_ns() >= m->enable_at_ns && m->fault_kind != MODEL_FAULT_NEVER_READY) {
            m->enabling = false;
            m->enabled = true;
            set_reg32(m, 0x1C, reg32(m, 0x1C) | 1u);
        }
        if ((cc >> 14) & 3u)
            set_reg32(m, 0x1C, (reg32(m, 0x1C) & ~0xCu) | 0x8u); /* SHST: shutdown complete */
        if (m->enabled && !m->fatal) {
            for (uint32_t q = 0; q < MAXQ; q++)
                if (m->sq[q].live)
                    work += service_sq(m, q);
            check_stray_doorbells(m);
        }
        if (!work) {
            struct timespec ts = {0, 20000};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

struct nvme_model *nvme_model_create(const struct nvme_model_config *cfg)
{
    struct nvme_model *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->cfg = *cfg;
    if (!m->cfg.max_io_queues)
        m->cfg.max_io_queues = 64;
    if (m->cfg.max_io_queues > MAXQ - 1)
        m->cfg.max_io_queues = MAXQ - 1;
    m->bar = aligned_alloc(BAR_BYTES, BAR_BYTES); /* a BAR is aligned to its size */
    if (!m->bar) {
        free(m);
        return NULL;
    }
    memset(m->bar, 0, BAR_BYTES);
    pthread_mutex_init(&m->lock, NULL);
    write_capabilities(m);
    reset_state(m);
    if (pthread_create(&m->thread, NULL, controller_thread, m) != 0) {
        free(m->bar);
        free(m);
        return NULL;
    }
    return m;
}

void *nvme_model_bar(struct nvme_model *m)
{
    return m->bar;
}

void nvme_model_inject(struct nvme_model *m, int kind, uint64_t after, uint32_t sct, uint32_t sc)
{
    m->fault_after = after;
    m->fault_sct = sct;
    m->fault_sc = sc;
    __atomic_store_n(&m->fault_kind, kind, __ATOMIC_RELEASE);
}

int nvme_model_violations(struct nvme_model *m, char *buf, size_t cap)
{
    pthread_mutex_lock(&m->lock);
    int n = violation_log_copy(&m->violations, buf, cap);
    pthread_mutex_unlock(&m->lock);
    return n;
}

void nvme_model_stats(struct nvme_model *m, struct nvme_model_stats *out)
{
    *out = m->stats;
}

void nvme_model_destroy(struct nvme_model *m)
{
    m->stop = 1;
    pthread_join(m->thread, NULL);
    pthread_mutex_destroy(&m->lock);
    free(m->bar);
    free(m);
}
