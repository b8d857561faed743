/* mlx5 command interface (PRM "Command Interface": command queue entry, mailboxes, ownership, delivery status,
 * "Return Status Summary"). Layouts: Linux include/linux/mlx5/device.h struct mlx5_cmd_layout (the 64-byte entry)
 * and struct mlx5_cmd_prot_block (the mailbox). One command at a time, on entry 0, polled. */
#include "drivers/drvlog.h"
#include "drivers/mlx5_internal.h"
#include "drivers/mmio.h"

#include "runtime/platform.h"

/* Command queue entry (struct mlx5_cmd_layout). */
#define ENT_TYPE 0x00               /* 31:24 = 0x7, PCIe command interface */
#define ENT_INLEN 0x04
#define ENT_IN_PTR 0x08             /* first input mailbox, 64-bit */
#define ENT_IN_INLINE 0x10          /* first 16 bytes of the input */
#define ENT_OUT_INLINE 0x20         /* first 16 bytes of the output */
#define ENT_OUT_PTR 0x30
#define ENT_OUTLEN 0x38
#define ENT_STATUS 0x3C             /* 31:24 token, 23:16 signature, 7:1 delivery status, 0 ownership (1 = HW) */
#define CMD_TYPE_PCIE 0x7

/* Mailbox (struct mlx5_cmd_prot_block): 512 data bytes, then next pointer, block number, token. */
#define MB_DATA 512u
#define MB_NEXT 0x230
#define MB_BLOCK 0x238
#define MB_TOKEN 0x23C              /* 23:16 token */
#define MB_STRIDE 1024u             /* mailboxes are 1 KiB aligned (delivery status 0x4/0x5 otherwise) */

#define MS 1000000ull

uint32_t mlx5_be32(uint32_t v)
{
    return (v >> 24) | ((v >> 8) & 0xFF00u) | ((v << 8) & 0xFF0000u) | (v << 24);
}

static uint32_t load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

void mlx5_set(uint8_t *buf, uint32_t off, uint32_t hi, uint32_t lo, uint32_t value)
{
    uint32_t width = hi - lo + 1;
    uint32_t mask = (width == 32 ? 0xFFFFFFFFu : ((1u << width) - 1u)) << lo;
    uint32_t v = load_be32(buf + off);
    store_be32(buf + off, (v & ~mask) | ((value << lo) & mask));
}

uint32_t mlx5_get(const uint8_t *buf, uint32_t off, uint32_t hi, uint32_t lo)
{
    uint32_t width = hi - lo + 1;
    uint32_t v = load_be32(buf + off) >> lo;
    return width == 32 ? v : v & ((1u << width) - 1u);
}

void mlx5_set64(uint8_t *buf, uint32_t off, uint64_t value)
{
    store_be32(buf + off, (uint32_t)(value >> 32));
    store_be32(buf + off + 4, (uint32_t)value);
}

void *mlx5_dma(struct mlx5 *m, size_t size, size_t align)
{
    (void)m;
    return dte_alloc(size, align);   /* zeroed; identity-mapped on the firmware, so the pointer is the bus address */
}

const char *mlx5_status_name(uint8_t status)
{
    switch (status) {                /* PRM "Return Status Summary" */
    case 0x00: return "OK";
    case 0x01: return "INTERNAL_ERR";
    case 0x02: return "BAD_OP";
    case 0x03: return "BAD_PARAM";
    case 0x04: return "BAD_SYS_STATE";
    case 0x05: return "BAD_RESOURCE";
    case 0x06: return "RESOURCE_BUSY";
    case 0x08: return "EXCEED_LIM";
    case 0x09: return "BAD_RES_STATE";
    case 0x0A: return "BAD_INDEX";
    case 0x0F: return "NO_RESOURCES";
    case 0x10: return "BAD_RESOURCE_STATE";
    case 0x30: return "BAD_PKT";
    case 0x40: return "BAD_SIZE";
    case 0x50: return "BAD_INPUT_LEN";
    case 0x51: return "BAD_OUTPUT_LEN";
    default: return "UNKNOWN";
    }
}

static const char *delivery_name(uint32_t status)
{
    switch (status) {                /* PRM "Command Delivery Status" */
    case 0x01: return "signature_error";
    case 0x02: return "token_error";
    case 0x03: return "bad_block_number";
    case 0x04: return "bad_output_pointer";
    case 0x05: return "bad_input_pointer";
    case 0x06: return "internal_error";
    case 0x07: return "input_len_error";
    case 0x08: return "output_len_error";
    case 0x09: return "reserved_not_zero";
    case 0x10: return "bad_command_type";
    default: return "unknown";
    }
}

const char *mlx5_opcode_name(uint16_t opcode)
{
    switch (opcode) {
    case OP_QUERY_HCA_CAP: return "QUERY_HCA_CAP";
    case OP_INIT_HCA: return "INIT_HCA";
    case OP_ENABLE_HCA: return "ENABLE_HCA";
    case OP_QUERY_PAGES: return "QUERY_PAGES";
    case OP_MANAGE_PAGES: return "MANAGE_PAGES";
    case OP_SET_HCA_CAP: return "SET_HCA_CAP";
    case OP_QUERY_ISSI: return "QUERY_ISSI";
    case OP_SET_ISSI: return "SET_ISSI";
    case OP_QUERY_SPECIAL_CONTEXTS: return "QUERY_SPECIAL_CONTEXTS";
    case OP_CREATE_EQ: return "CREATE_EQ";
    case OP_CREATE_CQ: return "CREATE_CQ";
    case OP_QUERY_VPORT_STATE: return "QUERY_VPORT_STATE";
    case OP_QUERY_NIC_VPORT_CONTEXT: return "QUERY_NIC_VPORT_CONTEXT";
    case OP_ALLOC_PD: return "ALLOC_PD";
    case OP_ALLOC_UAR: return "ALLOC_UAR";
    case OP_ALLOC_TRANSPORT_DOMAIN: return "ALLOC_TRANSPORT_DOMAIN";
    case OP_CREATE_TIR: return "CREATE_TIR";
    case OP_CREATE_SQ: return "CREATE_SQ";
    case OP_MODIFY_SQ: return "MODIFY_SQ";
    case OP_CREATE_RQ: return "CREATE_RQ";
    case OP_MODIFY_RQ: return "MODIFY_RQ";
    case OP_CREATE_TIS: return "CREATE_TIS";
    case OP_SET_FLOW_TABLE_ROOT: return "SET_FLOW_TABLE_ROOT";
    case OP_CREATE_FLOW_TABLE: return "CREATE_FLOW_TABLE";
    case OP_CREATE_FLOW_GROUP: return "CREATE_FLOW_GROUP";
    case OP_SET_FLOW_TABLE_ENTRY: return "SET_FLOW_TABLE_ENTRY";
    default: return "UNKNOWN";
    }
}

static uint32_t iseg_read(struct mlx5 *m, uint32_t off)
{
    return mlx5_be32(mmio_read32(m->bar, off));
}

static void iseg_write(struct mlx5 *m, uint32_t off, uint32_t v)
{
    mmio_write32(m->bar, off, mlx5_be32(v));
}

int mlx5_wait_initialized(struct mlx5 *m, const char *stage)
{
    uint64_t deadline = dte_time_ns() + (uint64_t)m->cfg.init_timeout_ms * MS;
    while (iseg_read(m, ISEG_INITIALIZING) >> 31) {
        if (dte_time_ns() > deadline) {
            drv_logf("dte: mlx5 error=timeout text=\"firmware still initializing %s\" timeout_ms=%u", stage,
                     m->cfg.init_timeout_ms);
            return MLX5_ERR_TIMEOUT;
        }
        cpu_relax();
    }
    return MLX5_OK;
}

/* PRM "HCA Initialization" steps 1-3: read the revisions, give the command queue address (high dword first; the
 * low dword write also sets nic_interface = 0, Ethernet/IB "full driver"), wait until the firmware is ready. */
int mlx5_cmd_setup(struct mlx5 *m)
{
    int rc = mlx5_wait_initialized(m, "before_cmdq");
    if (rc) {
        return rc;
    }
    uint32_t fw = iseg_read(m, ISEG_FW_REV), cmdif = iseg_read(m, ISEG_CMDIF_REV);
    m->info.fw_major = (uint16_t)fw;
    m->info.fw_minor = (uint16_t)(fw >> 16);
    m->info.fw_subminor = (uint16_t)cmdif;
    m->info.cmdif_rev = (uint16_t)(cmdif >> 16);
    if (m->info.cmdif_rev != CMDIF_REV) {
        drv_logf("dte: mlx5 error=unsupported text=\"command interface revision\" cmdif_rev=%u want=%u",
                 m->info.cmdif_rev, CMDIF_REV);
        return MLX5_ERR_UNSUPPORTED;
    }
    uint32_t sizes = iseg_read(m, ISEG_CMDQ_ADDR_L);
    m->log_cmdq_stride = sizes & 0xFu;
    uint32_t log_size = (sizes >> 4) & 0xFu;
    if (((1u << m->log_cmdq_stride) < 64u) || ((1u << (log_size + m->log_cmdq_stride)) > MLX5_PAGE)) {
        drv_logf("dte: mlx5 error=unsupported text=\"command queue geometry\" log_size=%u log_stride=%u", log_size,
                 m->log_cmdq_stride);
        return MLX5_ERR_UNSUPPORTED;
    }
    m->cmdq = mlx5_dma(m, MLX5_PAGE, MLX5_PAGE);
    m->mailboxes = mlx5_dma(m, 2u * MLX5_MAX_MAILBOXES * MB_STRIDE, MLX5_PAGE);
    if (!m->cmdq || !m->mailboxes) {
        return MLX5_ERR_NO_MEMORY;
    }
    uint64_t addr = (uint64_t)(uintptr_t)m->cmdq;
    iseg_write(m, ISEG_CMDQ_ADDR_H, (uint32_t)(addr >> 32));
    iseg_write(m, ISEG_CMDQ_ADDR_L, (uint32_t)addr & 0xFFFFF000u);
    return mlx5_wait_initialized(m, "after_cmdq");
}

struct mlx5_cmd *mlx5_cmd_begin(struct mlx5 *m, uint16_t opcode, uint16_t op_mod, uint32_t inlen, uint32_t outlen)
{
    struct mlx5_cmd *c = &m->cmd;
    for (uint32_t i = 0; i < inlen; i++) {
        c->in[i] = 0;
    }
    for (uint32_t i = 0; i < outlen; i++) {
        c->out[i] = 0;
    }
    c->inlen = inlen;
    c->outlen = outlen;
    mlx5_set(c->in, 0x00, 31, 16, opcode);   /* every *_in struct: opcode 0x00 31:16, op_mod 0x04 15:0 */
    mlx5_set(c->in, 0x04, 15, 0, op_mod);
    return c;
}

static uint8_t *mailbox(struct mlx5 *m, bool output, uint32_t n)
{
    return m->mailboxes + ((output ? MLX5_MAX_MAILBOXES : 0u) + n) * MB_STRIDE;
}

/* Chain enough mailboxes for `len` bytes past the inline 16; returns the first one's address (0 if none). */
static uint64_t chain(struct mlx5 *m, bool output, uint32_t len, const uint8_t *data)
{
    uint32_t count = len > 16 ? (len - 16 + MB_DATA - 1) / MB_DATA : 0;
    for (uint32_t n = 0; n < count; n++) {
        uint8_t *mb = mailbox(m, output, n);
        for (uint32_t i = 0; i < MB_STRIDE; i++) {
            mb[i] = 0;
        }
        if (data) {
            uint32_t start = 16 + n * MB_DATA, end = start + MB_DATA < len ? start + MB_DATA : len;
            for (uint32_t i = start; i < end; i++) {
                mb[i - start] = data[i];
            }
        }
        mlx5_set64(mb, MB_NEXT, n + 1 < count ? (uint64_t)(uintptr_t)mailbox(m, output, n + 1) : 0);
        mlx5_set(mb, MB_BLOCK, 31, 0, n);
        mlx5_set(mb, MB_TOKEN, 23, 16, m->token);
    }
    return count ? (uint64_t)(uintptr_t)mailbox(m, output, 0) : 0;
}

static void gather_output(struct mlx5 *m, const uint8_t *entry)
{
    struct mlx5_cmd *c = &m->cmd;
    for (uint32_t i = 0; i < 16 && i < c->outlen; i++) {
        c->out[i] = entry[ENT_OUT_INLINE + i];
    }
    for (uint32_t i = 16; i < c->outlen; i++) {
        c->out[i] = mailbox(m, true, (i - 16) / MB_DATA)[(i - 16) % MB_DATA];
    }
}

static int report_failure(struct mlx5 *m, uint16_t opcode, uint32_t delivery)
{
    if (delivery) {
        drv_logf("dte: mlx5 error=delivery op=%s opcode=0x%x delivery=%s(0x%x)", mlx5_opcode_name(opcode), opcode,
                 delivery_name(delivery), delivery);
        return MLX5_ERR_DELIVERY;
    }
    uint8_t status = (uint8_t)mlx5_get(m->cmd.out, 0x00, 31, 24);   /* every *_out struct: status 0x00 31:24 */
    uint32_t syndrome = mlx5_get(m->cmd.out, 0x04, 31, 0);          /* syndrome 0x04 */
    drv_logf("dte: mlx5 error=command op=%s opcode=0x%x status=%s(0x%x) syndrome=0x%x", mlx5_opcode_name(opcode),
             opcode, mlx5_status_name(status), status, syndrome);
    return MLX5_ERR_COMMAND;
}

int mlx5_cmd_exec(struct mlx5 *m)
{
    struct mlx5_cmd *c = &m->cmd;
    uint16_t opcode = (uint16_t)mlx5_get(c->in, 0x00, 31, 16);
    if (c->inlen > MLX5_CMD_MAX || c->outlen > MLX5_CMD_MAX) {
        return MLX5_ERR_TOO_LARGE;
    }
    m->token = (uint8_t)(m->token % 255u + 1u);          /* 1..255: the entry and its mailboxes share it */
    uint8_t *e = m->cmdq;                                /* entry 0 */
    for (uint32_t i = 0; i < 64; i++) {
        e[i] = 0;
    }
    mlx5_set(e, ENT_TYPE, 31, 24, CMD_TYPE_PCIE);
    mlx5_set(e, ENT_INLEN, 31, 0, c->inlen);
    mlx5_set64(e, ENT_IN_PTR, chain(m, false, c->inlen, c->in));
    for (uint32_t i = 0; i < 16 && i < c->inlen; i++) {
        e[ENT_IN_INLINE + i] = c->in[i];
    }
    mlx5_set64(e, ENT_OUT_PTR, chain(m, true, c->outlen, 0));
    mlx5_set(e, ENT_OUTLEN, 31, 0, c->outlen);
    mlx5_set(e, ENT_STATUS, 31, 24, m->token);
    mlx5_set(e, ENT_STATUS, 0, 0, 1);                    /* ownership: hardware */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    iseg_write(m, ISEG_CMD_DBELL, 1u);                   /* entry 0 */

    uint64_t deadline = dte_time_ns() + (uint64_t)m->cfg.command_timeout_ms * MS;
    while (__atomic_load_n(&e[ENT_STATUS + 3], __ATOMIC_ACQUIRE) & 1u) {
        if (dte_time_ns() > deadline) {
            drv_logf("dte: mlx5 error=timeout op=%s opcode=0x%x timeout_ms=%u", mlx5_opcode_name(opcode), opcode,
                     m->cfg.command_timeout_ms);
            return MLX5_ERR_TIMEOUT;
        }
        cpu_relax();
    }
    uint32_t delivery = mlx5_get(e, ENT_STATUS, 7, 1);
    if (!delivery) {
        gather_output(m, e);
    }
    if (delivery || mlx5_get(c->out, 0x00, 31, 24) != 0) {
        return report_failure(m, opcode, delivery);
    }
    return MLX5_OK;
}
