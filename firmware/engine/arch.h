/* The architecture table (arch.c): per general.architecture, its tensors (required/optional, shapes) and the few
 * ways its forward pass differs from llama's, all chosen at load (model_load.c) — there is one forward pass
 * (forward.c). Names and shapes follow llama.cpp's src/llama-arch.cpp and src/models/<arch>.cpp. Engine-internal.
 */
#ifndef DTE_ENGINE_ARCH_H
#define DTE_ENGINE_ARCH_H

#include <stdbool.h>
#include <stdint.h>

#include "gguf.h"

/* A tensor dimension in terms of the hyper-parameters. */
enum dte_dim {
    DTE_DIM_1,       /* 1 (a vector) */
    DTE_DIM_EMBD,    /* n_embd */
    DTE_DIM_Q,       /* n_head * head_dim */
    DTE_DIM_KV,      /* n_head_kv * head_dim */
    DTE_DIM_QKV,     /* Q + 2 KV (fused attn_qkv) */
    DTE_DIM_FF,      /* n_ff */
    DTE_DIM_FF2,     /* 2 n_ff (fused gate|up) */
    DTE_DIM_HEAD,    /* head_dim */
};

enum dte_tensor_flags {
    DTE_T_REQUIRED = 0,
    DTE_T_OPTIONAL = 1,     /* may be absent */
    DTE_T_UNLESS_QKV = 2,   /* required unless the layer has a fused attn_qkv */
};

/* One per-layer tensor: "blk.<il>.<name>". */
typedef struct {
    const char *name;       /* "attn_q.weight" */
    uint8_t slot;           /* enum dte_layer_matrix, or enum dte_layer_vector when vector */
    bool vector;            /* a 1-D tensor copied to F32 */
    uint8_t cols, rows;     /* enum dte_dim: ne[0], ne[1] */
    uint8_t flags;          /* enum dte_tensor_flags */
} dte_tensor_spec;

typedef struct {
    const char *name;        /* general.architecture */
    const char *refused;     /* non-NULL: files of this architecture are refused with this reason */
    uint8_t rope_type;       /* enum dte_rope_type */
    uint8_t ffn;             /* enum dte_ffn_kind */
    bool fused_gate_up;      /* ffn_up holds gate|up (phi3) */
    bool embd_scale;         /* x = sqrt(n_embd) * embedding (gemma) */
    bool q_prescale;         /* Q *= attention scale before attention, kq scale 1 (gemma, phi3) */
    bool big_scale_by_embd;  /* gemma: the 27B sizes scale by 1/sqrt(n_embd/n_head), not 1/sqrt(head_dim) */
    uint32_t big_layers;     /* ... recognised by their layer count, as llama.cpp does (0: none) */
    uint8_t swa_pattern;     /* every n-th layer is global, the others slide (0: no sliding window) */
    uint32_t swa_default;    /* window when the file has no attention.sliding_window (0: none without the key) */
    bool swa_local_base;     /* sliding layers' rope base defaults to 10000 (gemma3), else the global base */
    bool attn_softcap;       /* reads attn_logit_softcapping (gemma2) */
    const dte_tensor_spec *layer;
    uint32_t n_layer;
} dte_arch;

/* The entry for general.architecture, or NULL when the table has none. */
const dte_arch *dte_arch_find(dte_str name);
/* Entry i of the table, or NULL past its end (to list what dte runs: `dte build`'s refusal hint). */
const dte_arch *dte_arch_at(uint32_t i);

#endif /* DTE_ENGINE_ARCH_H */
