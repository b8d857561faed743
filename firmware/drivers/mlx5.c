/* mlx5 bring-up (see mlx5.h for the order and the sources). Each command is encoded field by field at the PRM
 * offsets: (byte offset, bit hi, bit lo) of big-endian dwords, named after the Linux mlx5_ifc.h struct. */
#include "drivers/drvlog.h"
#include "drivers/mlx5_internal.h"

#include "runtime/platform.h"

#define BOOT_PAGES 1
#define INIT_PAGES 2
#define REGULAR_PAGES 3
#define PAGES_PER_COMMAND 4096u
#define ISSI_1 1u
#define HCA_CAP_GENERAL 0u             /* capability type 0 (op_mod 15:1) */
#define HCA_CAP_CURRENT 1u             /* op_mod bit 0: current (1) or maximum (0) */
#define CAP_BYTES 0x1000u              /* union hca_cap_union */

/* Simple commands whose output carries an object number at 0x08 23:0 (alloc_uar_out, alloc_pd_out,
 * alloc_transport_domain_out: 16-byte input and output). */
static int alloc_object(struct mlx5 *m, uint16_t opcode, uint32_t *out)
{
    mlx5_cmd_begin(m, opcode, 0, 0x10, 0x10);
    int rc = mlx5_cmd_exec(m);
    if (!rc) {
        *out = mlx5_get(m->cmd.out, 0x08, 23, 0);
    }
    return rc;
}

static int enable_hca(struct mlx5 *m)
{
    mlx5_cmd_begin(m, OP_ENABLE_HCA, 0, 0x10, 0x10);   /* enable_hca_in: function_id 0x08 15:0 = 0 (ourselves) */
    return mlx5_cmd_exec(m);
}

/* query_issi_out: supported_issi_dw0 at 0x6C (bit n = ISSI n supported); set_issi_in: current_issi 0x08 15:0. */
static int set_issi(struct mlx5 *m)
{
    mlx5_cmd_begin(m, OP_QUERY_ISSI, 0, 0x10, 0x70);
    int rc = mlx5_cmd_exec(m);
    if (rc) {
        return rc;
    }
    uint32_t supported = mlx5_get(m->cmd.out, 0x6C, 31, 0);
    if (!(supported & (1u << ISSI_1))) {
        drv_logf("dte: mlx5 error=unsupported text=\"ISSI 1 not supported\" supported_issi=0x%x", supported);
        return MLX5_ERR_UNSUPPORTED;
    }
    mlx5_cmd_begin(m, OP_SET_ISSI, 0, 0x10, 0x10);
    mlx5_set(m->cmd.in, 0x08, 15, 0, ISSI_1);
    return mlx5_cmd_exec(m);
}

/* query_pages_in op_mod 1 boot / 2 init / 3 regular; query_pages_out num_pages 0x0C (signed). manage_pages_in op_mod 1
 * (ALLOCATION_SUCCESS: pages given), input_num_entries 0x0C, pas[] from 0x10 (64-bit, 4 KiB aligned). */
static int supply_pages(struct mlx5 *m, uint16_t which, uint32_t *given)
{
    mlx5_cmd_begin(m, OP_QUERY_PAGES, which, 0x10, 0x10);
    int rc = mlx5_cmd_exec(m);
    if (rc) {
        return rc;
    }
    int32_t wanted = (int32_t)mlx5_get(m->cmd.out, 0x0C, 31, 0);
    uint32_t function_id = mlx5_get(m->cmd.out, 0x08, 15, 0);
    *given = 0;
    while (wanted > 0) {
        uint32_t n = (uint32_t)wanted < PAGES_PER_COMMAND ? (uint32_t)wanted : PAGES_PER_COMMAND;
        uint8_t *pages = mlx5_dma(m, (size_t)n * MLX5_PAGE, MLX5_PAGE);
        if (!pages) {
            drv_logf("dte: mlx5 error=no_memory text=\"firmware pages\" pages=%u", n);
            return MLX5_ERR_NO_MEMORY;
        }
        struct mlx5_cmd *c = mlx5_cmd_begin(m, OP_MANAGE_PAGES, 1, 0x10 + 8u * n, 0x10);
        mlx5_set(c->in, 0x08, 15, 0, function_id);
        mlx5_set(c->in, 0x0C, 31, 0, n);
        for (uint32_t i = 0; i < n; i++) {
            mlx5_set64(c->in, 0x10 + 8u * i, (uint64_t)(uintptr_t)(pages + (size_t)i * MLX5_PAGE));
        }
        if ((rc = mlx5_cmd_exec(m))) {
            return rc;
        }
        wanted -= (int32_t)n;
        *given += n;
    }
    return MLX5_OK;
}

/* query_hca_cap_in op_mod = type << 1 | current; output capability at 0x10. set_hca_cap_in capability at 0x10.
 * We hand back the current general capabilities with cmdif_checksum (cmd_hca_cap 0x40 15:14) off: the driver
 * does not checksum commands. */
static int set_caps(struct mlx5 *m)
{
    mlx5_cmd_begin(m, OP_QUERY_HCA_CAP, HCA_CAP_GENERAL << 1 | HCA_CAP_CURRENT, 0x10, 0x10 + CAP_BYTES);
    int rc = mlx5_cmd_exec(m);
    if (rc) {
        return rc;
    }
    struct mlx5_cmd *c = &m->cmd;
    uint32_t port_type = mlx5_get(c->out, 0x10 + 0x34, 9, 8);   /* cmd_hca_cap port_type: 1 = Ethernet */
    if (port_type != 1) {
        drv_logf("dte: mlx5 error=unsupported text=\"port is not Ethernet\" port_type=%u", port_type);
        return MLX5_ERR_UNSUPPORTED;
    }
    mlx5_cmd_begin(m, OP_SET_HCA_CAP, HCA_CAP_GENERAL << 1, 0x10 + CAP_BYTES, 0x10);
    for (uint32_t i = 0; i < CAP_BYTES; i++) {
        c->in[0x10 + i] = c->out[0x10 + i];  /* cmd_begin cleared only the output's first 0x10 bytes */
    }
    mlx5_set(c->in, 0x10 + 0x40, 15, 14, 0);
    return mlx5_cmd_exec(m);
}

/* query_special_contexts_out: resd_lkey 0x0C (the lkey that means "physical address"). */
static int query_reserved_lkey(struct mlx5 *m)
{
    mlx5_cmd_begin(m, OP_QUERY_SPECIAL_CONTEXTS, 0, 0x10, 0x10);
    int rc = mlx5_cmd_exec(m);
    if (!rc) {
        m->info.reserved_lkey = mlx5_get(m->cmd.out, 0x0C, 31, 0);
    }
    return rc;
}

/* query_nic_vport_context_out: nic_vport_context at 0x10; permanent_address at context 0xF4 (47:0 in the low
 * 48 bits of 0xF4..0xFB: MAC bytes at 0xF6..0xFB). */
static int query_mac(struct mlx5 *m)
{
    mlx5_cmd_begin(m, OP_QUERY_NIC_VPORT_CONTEXT, 0, 0x10, 0x10 + 0x100);
    int rc = mlx5_cmd_exec(m);
    if (rc) {
        return rc;
    }
    for (int i = 0; i < DTE_ETH_ADDR_SIZE; i++) {
        m->info.mac[i] = m->cmd.out[0x10 + 0xF6 + i];
    }
    return MLX5_OK;
}

static int init_hca(struct mlx5 *m)
{
    mlx5_cmd_begin(m, OP_INIT_HCA, 0, 0x10, 0x10);
    return mlx5_cmd_exec(m);
}

static int bring_up(struct mlx5 *m)
{
    int rc;
    if ((rc = mlx5_cmd_setup(m)) || (rc = enable_hca(m)) || (rc = set_issi(m)) ||
        (rc = supply_pages(m, BOOT_PAGES, &m->info.boot_pages)) || (rc = set_caps(m)) ||
        (rc = supply_pages(m, INIT_PAGES, &m->info.init_pages)) || (rc = init_hca(m)) ||
        (rc = supply_pages(m, REGULAR_PAGES, &m->info.regular_pages)) || (rc = query_reserved_lkey(m)) ||
        (rc = alloc_object(m, OP_ALLOC_UAR, &m->info.uar)) || (rc = alloc_object(m, OP_ALLOC_PD, &m->info.pd)) ||
        (rc = alloc_object(m, OP_ALLOC_TRANSPORT_DOMAIN, &m->info.transport_domain)) || (rc = query_mac(m))) {
        return rc;
    }
    if ((uint64_t)(m->info.uar + 1) * MLX5_PAGE > m->bar_size) {
        drv_logf("dte: mlx5 error=no_device text=\"UAR page outside BAR 0\" uar=%u bar_size=0x%llx", m->info.uar,
                 (unsigned long long)m->bar_size);
        return MLX5_ERR_NO_DEVICE;
    }
    return mlx5_create_queues(m);
}

int mlx5_init(struct mlx5 *m)
{
    m->ready = false;
    int rc = bring_up(m);
    if (rc) {
        drv_logf("dte: mlx5 init_failed error=%s", mlx5_error_name(rc));
        return rc;
    }
    m->ready = true;
    const struct mlx5_info *i = &m->info;
    drv_logf("dte: mlx5 ready fw=%u.%u.%u mac=%02x:%02x:%02x:%02x:%02x:%02x boot_pages=%u init_pages=%u sqn=%u "
             "rqn=%u",
             i->fw_major, i->fw_minor, i->fw_subminor, i->mac[0], i->mac[1], i->mac[2], i->mac[3], i->mac[4], i->mac[5],
             i->boot_pages, i->init_pages, i->sqn, i->rqn);
    return MLX5_OK;
}

struct mlx5 *mlx5_create(volatile void *bar0, uint64_t bar_size, const struct mlx5_config *cfg)
{
    struct mlx5 *m = dte_alloc(sizeof *m, 64);
    if (!m) {
        return 0;
    }
    m->bar = bar0;
    m->bar_size = bar_size;
    if (cfg) {
        m->cfg = *cfg;
    }
    if (!m->cfg.init_timeout_ms) {
        m->cfg.init_timeout_ms = 120000;
    }
    if (!m->cfg.command_timeout_ms) {
        m->cfg.command_timeout_ms = 60000;
    }
    if (!m->cfg.queue_log_size || m->cfg.queue_log_size > 12) {
        m->cfg.queue_log_size = 8;
    }
    return m;
}

struct mlx5 *mlx5_find(int nth, const struct mlx5_config *cfg)
{
    for (int i = 0; i < pci_device_count(); i++) {
        const struct pci_device *d = pci_device_at(i);
        if (d->vendor_id != MLX5_PCI_VENDOR || d->class_code != 0x02 || nth-- > 0) {
            continue;
        }
        if (d->bars[0].is_io || !d->bars[0].base || d->bars[0].size < 2 * MLX5_PAGE) {
            drv_logf("dte: mlx5 error=no_device text=\"BAR 0 missing\" dev=%02x:%02x.%x", d->bus, d->dev, d->fn);
            return 0;
        }
        pci_enable(d);
        return mlx5_create((volatile void *)(uintptr_t)d->bars[0].base, d->bars[0].size, cfg);
    }
    return 0;
}

const char *mlx5_error_name(int err)
{
    switch (err) {
    case MLX5_OK: return "ok";
    case MLX5_ERR_NO_DEVICE: return "no_device";
    case MLX5_ERR_TIMEOUT: return "timeout";
    case MLX5_ERR_COMMAND: return "command";
    case MLX5_ERR_DELIVERY: return "delivery";
    case MLX5_ERR_UNSUPPORTED: return "unsupported";
    case MLX5_ERR_NO_MEMORY: return "no_memory";
    case MLX5_ERR_STATE: return "state";
    case MLX5_ERR_FULL: return "full";
    case MLX5_ERR_TOO_LARGE: return "too_large";
    default: return "unknown";
    }
}

const struct mlx5_info *mlx5_get_info(const struct mlx5 *m)
{
    return &m->info;
}

void mlx5_mac(struct mlx5 *m, uint8_t out[DTE_ETH_ADDR_SIZE])
{
    for (int i = 0; i < DTE_ETH_ADDR_SIZE; i++) {
        out[i] = m->info.mac[i];
    }
}

/* Link state: QUERY_VPORT_STATE (query_vport_state_out state 0x0C 3:0, 1 = up). */
bool mlx5_link_up(struct mlx5 *m)
{
    if (!m->ready) {
        return false;
    }
    mlx5_cmd_begin(m, OP_QUERY_VPORT_STATE, 0, 0x10, 0x10);
    return mlx5_cmd_exec(m) == MLX5_OK && mlx5_get(m->cmd.out, 0x0C, 3, 0) == 1;
}

int mlx5_transmit(struct mlx5 *m, const uint8_t *frame, size_t size)
{
    return m->ready ? mlx5_tx(m, frame, size) : MLX5_ERR_STATE;
}

size_t mlx5_poll_receive(struct mlx5 *m, uint8_t *buf, size_t capacity)
{
    return m->ready ? mlx5_rx(m, buf, capacity) : 0;
}

static int nif_init(void *ctx)
{
    return mlx5_init(ctx);
}
static bool nif_link_up(void *ctx)
{
    return mlx5_link_up(ctx);
}
static int nif_transmit(void *ctx, const uint8_t *f, size_t n)
{
    return mlx5_transmit(ctx, f, n);
}
static size_t nif_poll(void *ctx, uint8_t *b, size_t cap)
{
    return mlx5_poll_receive(ctx, b, cap);
}
static void nif_mac(void *ctx, uint8_t out[DTE_ETH_ADDR_SIZE])
{
    mlx5_mac(ctx, out);
}

void mlx5_netif(struct mlx5 *m, dte_netif *out)
{
    *out = (dte_netif){.ctx = m,
                       .init = nif_init,
                       .link_up = nif_link_up,
                       .transmit = nif_transmit,
                       .poll_receive = nif_poll,
                       .mac = nif_mac};
}
