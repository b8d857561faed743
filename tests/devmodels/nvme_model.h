/* A simulated NVMe controller for hosted driver tests (NVMe Base 2.0 / NVM CS 1.0 behaviour, written from the
 * spec independently of firmware/drivers/nvme_spec.h). The "BAR" is memory; a thread watches CC and the doorbells,
 * DMAs to host pointers given as PRPs, and records every protocol violation it sees from the driver. */
#ifndef DTE_TESTS_NVME_MODEL_H
#define DTE_TESTS_NVME_MODEL_H

#include <stddef.h>
#include <stdint.h>

enum nvme_model_fault {
    MODEL_FAULT_NONE = 0,
    MODEL_FAULT_STATUS = 1,      /* I/O command number `after` completes with status (sct, sc) */
    MODEL_FAULT_FATAL = 2,       /* at I/O command number `after`: set CSTS.CFS and stop */
    MODEL_FAULT_DROP = 3,        /* I/O command number `after` never completes */
    MODEL_FAULT_NEVER_READY = 4, /* CSTS.RDY never follows CC.EN */
};

struct nvme_model_config {
    uint8_t *backing;            /* namespace contents, nsze << lba_shift bytes (owned by the caller) */
    uint64_t nsze;               /* namespace size in blocks */
    uint32_t lba_shift;          /* 9 or 12 */
    uint32_t lbaf_index;         /* which LBA format entry FLBAS selects (formats before it are decoys) */
    uint32_t mdts;               /* Identify MDTS (2^n pages of CAP.MPSMIN), 0 = unlimited */
    uint32_t mqes;               /* CAP.MQES, 0's based */
    uint32_t dstrd;              /* CAP.DSTRD */
    uint32_t cap_to;             /* CAP.TO, 500 ms units */
    uint32_t ready_delay_us;     /* time from CC.EN=1 to CSTS.RDY=1 */
    uint32_t max_io_queues;      /* pairs granted by Set Features / Number of Queues */
    uint32_t reorder;            /* >1: complete up to this many commands per pass in reverse order */
    char serial[21];
    char model[41];
    uint16_t vendor_id;
};

struct nvme_model_stats {
    uint64_t io_commands;
    uint64_t admin_commands;
    uint64_t bytes_read;
    uint32_t max_outstanding;    /* most SQ entries pending at once on an I/O queue */
    uint32_t max_transfer;       /* largest Read in bytes */
    uint32_t prp_list_commands;  /* Reads that used a PRP list */
    uint32_t io_queues_created;
};

struct nvme_model;

struct nvme_model *nvme_model_create(const struct nvme_model_config *cfg);
void *nvme_model_bar(struct nvme_model *m);
void nvme_model_inject(struct nvme_model *m, int kind, uint64_t after, uint32_t sct, uint32_t sc);
/* Violations seen so far, one per line, into buf; returns how many. */
int nvme_model_violations(struct nvme_model *m, char *buf, size_t cap);
void nvme_model_stats(struct nvme_model *m, struct nvme_model_stats *out);
void nvme_model_destroy(struct nvme_model *m);

#endif
