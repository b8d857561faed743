/* The architecture table (see arch.h). To add an architecture: list its per-layer tensors (reusing the shared
 * attention rows where they fit), add one dte_arch entry saying how its forward pass differs, and where it
 * computes something forward.c does not do yet, add that step there behind a field of dte_hparams. docs/engine.md
 * walks through it. Tensor names: llama.cpp src/llama-arch.cpp LLM_TENSOR_NAMES; what each architecture reads and
 * computes: src/models/<arch>.cpp. */
#include "arch.h"

#include "model.h"

#define M(name, slot, cols, rows, flags) {name, slot, false, DTE_DIM_##cols, DTE_DIM_##rows, flags}
#define V(name, slot, n, flags) {name, slot, true, DTE_DIM_##n, DTE_DIM_1, flags}
#define OPT DTE_T_OPTIONAL
#define REQ DTE_T_REQUIRED

/* llama.cpp create_tensor_qkv: a fused attn_qkv or separate attn_q/k/v, each with optional biases. */
#define ATTENTION_QKV                                                                                      \
    M("attn_qkv.weight", DTE_WQKV, EMBD, QKV, OPT), M("attn_q.weight", DTE_WQ, EMBD, Q, DTE_T_UNLESS_QKV), \
        M("attn_k.weight", DTE_WK, EMBD, KV, DTE_T_UNLESS_QKV),                                            \
        M("attn_v.weight", DTE_WV, EMBD, KV, DTE_T_UNLESS_QKV), V("attn_q.bias", DTE_BQ, Q, OPT),          \
        V("attn_k.bias", DTE_BK, KV, OPT), V("attn_v.bias", DTE_BV, KV, OPT)

#define PRE_NORMS V("attn_norm.weight", DTE_ATTN_NORM, EMBD, REQ), V("ffn_norm.weight", DTE_FFN_NORM, EMBD, REQ)
#define ATTN_OUT M("attn_output.weight", DTE_WO, Q, EMBD, REQ)
#define SWIGLU_FFN                                                                                \
    M("ffn_gate.weight", DTE_W_GATE, EMBD, FF, REQ), M("ffn_up.weight", DTE_W_UP, EMBD, FF, REQ), \
        M("ffn_down.weight", DTE_W_DOWN, FF, EMBD, REQ)
#define QK_NORMS V("attn_q_norm.weight", DTE_Q_NORM, HEAD, REQ), V("attn_k_norm.weight", DTE_K_NORM, HEAD, REQ)
#define POST_NORMS                                                  \
    V("post_attention_norm.weight", DTE_ATTN_POST_NORM, EMBD, REQ), \
        V("post_ffw_norm.weight", DTE_FFN_POST_NORM, EMBD, REQ)

/* llama (llm_build_llama; Mistral and the dense Mixtral naming are the same tensors) and qwen2 (llm_build_qwen2:
 * the same tensors, its Q/K/V biases are the optional ones every architecture may carry). */
static const dte_tensor_spec llama_layer[] = {PRE_NORMS, ATTENTION_QKV, ATTN_OUT, SWIGLU_FFN};
/* qwen3: per-head RMSNorm of Q and K before RoPE. */
static const dte_tensor_spec qwen3_layer[] = {PRE_NORMS, ATTENTION_QKV, QK_NORMS, ATTN_OUT, SWIGLU_FFN};
/* gemma2: post-norms around attention and FFN. gemma3 adds the per-head Q/K norms. */
static const dte_tensor_spec gemma2_layer[] = {PRE_NORMS, ATTENTION_QKV, ATTN_OUT, SWIGLU_FFN, POST_NORMS};
static const dte_tensor_spec gemma3_layer[] = {PRE_NORMS, ATTENTION_QKV, QK_NORMS, ATTN_OUT, SWIGLU_FFN, POST_NORMS};
/* phi3: fused attn_qkv (or separate), ffn_up holds gate|up, no ffn_gate. */
static const dte_tensor_spec phi3_layer[] = {
    PRE_NORMS,
    ATTENTION_QKV,
    ATTN_OUT,
    M("ffn_up.weight", DTE_W_UP, EMBD, FF2, REQ),
    M("ffn_down.weight", DTE_W_DOWN, FF, EMBD, REQ),
};

#define LAYER(t) .layer = t, .n_layer = sizeof t / sizeof t[0]

static const dte_arch table[] = {
    {.name = "llama", .rope_type = DTE_ROPE_NORM, .ffn = DTE_FFN_SWIGLU, LAYER(llama_layer)},
    {.name = "qwen2", .rope_type = DTE_ROPE_NEOX, .ffn = DTE_FFN_SWIGLU, LAYER(llama_layer)},
    {.name = "qwen3", .rope_type = DTE_ROPE_NEOX, .ffn = DTE_FFN_SWIGLU, LAYER(qwen3_layer)},
    {.name = "gemma2",
     .rope_type = DTE_ROPE_NEOX,
     .ffn = DTE_FFN_GEGLU,
     .embd_scale = true,
     .q_prescale = true,
     .big_scale_by_embd = true,
     .big_layers = 46,
     .swa_pattern = 2,
     .swa_default = 4096,
     .attn_softcap = true,
     LAYER(gemma2_layer)},
    {.name = "gemma3",
     .rope_type = DTE_ROPE_NEOX,
     .ffn = DTE_FFN_GEGLU,
     .embd_scale = true,
     .q_prescale = true,
     .big_scale_by_embd = true,
     .big_layers = 62,
     .swa_pattern = 6,
     .swa_local_base = true,
     LAYER(gemma3_layer)},
    {.name = "phi3",
     .rope_type = DTE_ROPE_NEOX,
     .ffn = DTE_FFN_SWIGLU,
     .fused_gate_up = true,
     .q_prescale = true,
     LAYER(phi3_layer)},
    {.name = "qwen2moe", .refused = "mixture-of-experts layers (ffn_*_exps) are not supported"},
    {.name = "qwen3moe", .refused = "mixture-of-experts layers (ffn_*_exps) are not supported"},
};

const dte_arch *dte_arch_at(uint32_t i)
{
    return i < sizeof table / sizeof table[0] ? &table[i] : 0;
}

const char *dte_engine_arch_name(uint32_t i, bool *runs)
{
    const dte_arch *a = dte_arch_at(i);
    if (a && runs) {
        *runs = a->refused == 0;
    }
    return a ? a->name : 0;
}

const dte_arch *dte_arch_find(dte_str name)
{
    for (uint32_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (dte_str_eq(name, table[i].name)) {
            return &table[i];
        }
    }
    return 0;
}
