/* NVMe register, command and data-structure layouts used by the driver.
 *
 * Section and figure numbers are from the NVM Express Base Specification, Revision 2.0 (2021) and the NVM Command
 * Set Specification 1.0 ("NVM CS").
 */
#ifndef DTE_DRIVERS_NVME_SPEC_H
#define DTE_DRIVERS_NVME_SPEC_H

#include <stdint.h>

/* Controller properties (Base 2.0 section 3.1.3, Figure 33: offsets into BAR0). */
#define NVME_REG_CAP 0x00u /* Controller Capabilities, 64-bit */
#define NVME_REG_VS 0x08u /* Version */
#define NVME_REG_INTMS 0x0Cu /* Interrupt Mask Set */
#define NVME_REG_INTMC 0x10u /* Interrupt Mask Clear */
#define NVME_REG_CC 0x14u /* Controller Configuration */
#define NVME_REG_CSTS 0x1Cu /* Controller Status */
#define NVME_REG_AQA 0x24u /* Admin Queue Attributes */
#define NVME_REG_ASQ 0x28u /* Admin Submission Queue Base Address, 64-bit */
#define NVME_REG_ACQ 0x30u /* Admin Completion Queue Base Address, 64-bit */
#define NVME_REG_DOORBELL_BASE 0x1000u /* SQ y Tail Doorbell at 1000h + (2y * (4 << CAP.DSTRD)), section 3.1.3.x */

/* CAP fields (Figure 36). */
#define NVME_CAP_MQES(cap) ((uint32_t)((cap) & 0xFFFFu))          /* max queue entries, 0's based */
#define NVME_CAP_TO(cap) ((uint32_t)(((cap) >> 24) & 0xFFu))    /* ready timeout, 500 ms units */
#define NVME_CAP_DSTRD(cap) ((uint32_t)(((cap) >> 32) & 0xFu))     /* doorbell stride 2^(2+DSTRD) */
#define NVME_CAP_CSS(cap) ((uint32_t)(((cap) >> 37) & 0xFFu))    /* command sets supported */
#define NVME_CAP_MPSMIN(cap) ((uint32_t)(((cap) >> 48) & 0xFu))     /* min page size 2^(12+MPSMIN) */
#define NVME_CAP_MPSMAX(cap) ((uint32_t)(((cap) >> 52) & 0xFu))
#define NVME_CAP_CSS_NVM 0x01u                                      /* bit 37: NVM command set */

/* CC fields (Figure 41). */
#define NVME_CC_EN (1u << 0)
#define NVME_CC_CSS_NVM (0u << 4)
#define NVME_CC_MPS(shift) (((uint32_t)(shift) - 12u) << 7)
#define NVME_CC_AMS_RR (0u << 11)
#define NVME_CC_SHN_NORMAL (1u << 14)
#define NVME_CC_SHN_MASK (3u << 14)
#define NVME_CC_IOSQES(shift) ((uint32_t)(shift) << 16)
#define NVME_CC_IOCQES(shift) ((uint32_t)(shift) << 20)

/* CSTS fields (Figure 42). */
#define NVME_CSTS_RDY (1u << 0)
#define NVME_CSTS_CFS (1u << 1)
#define NVME_CSTS_SHST_MASK (3u << 2)
#define NVME_CSTS_SHST_COMPLETE (2u << 2)

/* Admin command opcodes (Figure 138). */
#define NVME_ADMIN_CREATE_IO_SQ 0x01u
#define NVME_ADMIN_CREATE_IO_CQ 0x05u
#define NVME_ADMIN_IDENTIFY 0x06u
#define NVME_ADMIN_SET_FEATURES 0x09u

/* NVM command set I/O opcodes (NVM CS 1.0 Figure 17). */
#define NVME_NVM_READ 0x02u

/* Identify CNS values (Base 2.0 Figure 273). */
#define NVME_CNS_NAMESPACE 0x00u
#define NVME_CNS_CONTROLLER 0x01u
#define NVME_CNS_ACTIVE_NS_LIST 0x02u

/* Feature identifiers (Figure 317). */
#define NVME_FEAT_NUMBER_OF_QUEUES 0x07u

/* Submission Queue Entry, 64 bytes (Base 2.0 section 4.2, Figure 88: Common Command Format). */
struct nvme_sqe {
    uint32_t cdw0;   /* OPC 7:0, FUSE 9:8, PSDT 15:14 (0 = PRPs), CID 31:16 */
    uint32_t nsid;
    uint32_t cdw2;
    uint32_t cdw3;
    uint64_t mptr;
    uint64_t prp1;
    uint64_t prp2;
    uint32_t cdw10;
    uint32_t cdw11;
    uint32_t cdw12;
    uint32_t cdw13;
    uint32_t cdw14;
    uint32_t cdw15;
};

/* Completion Queue Entry, 16 bytes (section 4.6, Figure 92). */
struct nvme_cqe {
    uint32_t dw0;    /* command specific */
    uint32_t dw1;
    uint16_t sqhd;   /* SQ head pointer */
    uint16_t sqid;
    uint16_t cid;
    uint16_t status; /* bit 0: phase tag; 15:1 status field (Figure 93): SC 8:1, SCT 11:9, CRD 13:12, M 14, DNR 15 */
};

_Static_assert(sizeof(struct nvme_sqe) == 64, "SQE is 64 bytes (2^6: CC.IOSQES = 6)");
_Static_assert(sizeof(struct nvme_cqe) == 16, "CQE is 16 bytes (2^4: CC.IOCQES = 4)");

#define NVME_SQES_SHIFT 6u
#define NVME_CQES_SHIFT 4u

#define NVME_STATUS_PHASE(s) ((uint16_t)((s) & 1u))
#define NVME_STATUS_SC(s) ((uint8_t)(((s) >> 1) & 0xFFu))
#define NVME_STATUS_SCT(s) ((uint8_t)(((s) >> 9) & 0x7u))
#define NVME_STATUS_DNR(s) ((uint8_t)(((s) >> 15) & 0x1u))

/* Identify Controller data structure offsets (Figure 275). */
#define NVME_IDC_VID 0
#define NVME_IDC_SN 4    /* 20 bytes ASCII, space padded */
#define NVME_IDC_MN 24   /* 40 bytes */
#define NVME_IDC_FR 64   /* 8 bytes */
#define NVME_IDC_MDTS 77   /* max data transfer size, 2^n units of CAP.MPSMIN; 0 = no limit */
#define NVME_IDC_NN 516  /* number of namespaces, 32-bit */

/* Identify Namespace (NVM CS 1.0 Figure 97). */
#define NVME_IDN_NSZE 0    /* namespace size in logical blocks, 64-bit */
#define NVME_IDN_NLBAF 25   /* number of LBA formats, 0's based */
#define NVME_IDN_FLBAS 26   /* formatted LBA size: 3:0 low index, 6:5 high index bits */
#define NVME_IDN_LBAF0 128  /* LBA format n at 128 + 4n: MS 15:0, LBADS 23:16 (2^n bytes), RP 25:24 */

#endif /* DTE_DRIVERS_NVME_SPEC_H */
