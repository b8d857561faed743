/* What a GGUF is and whether the engine runs it, for `dte build` / `dte inspect` / `dte flash --model`
 * (src/dte_build/image/model_check.py). The verdict is the engine's own check (dte_host_model_check: the same
 * parse + model + tokenizer construction the firmware does at boot), so it grows with the engine. */
#ifndef DTE_HOSTED_DTE_HOST_MODEL_H
#define DTE_HOSTED_DTE_HOST_MODEL_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t version;            /* GGUF version */
    uint64_t n_tensors, n_kv;
    int64_t n_vocab;             /* tokenizer.ggml.tokens count; -1 when absent */
    int64_t n_layer, n_embd, n_ctx_train; /* <arch>.block_count / .embedding_length / .context_length; -1 absent */
    uint64_t type_counts[32];    /* tensors per ggml type id (enum dte_type) */
    int32_t has_chat_template;   /* tokenizer.chat_template present */
    int32_t runs;                /* 1: dte_host_model_check accepted the file */
    char architecture[64];       /* general.architecture ("" when absent) */
    char tokenizer[32];          /* tokenizer.ggml.model */
    char pre_tokenizer[64];      /* tokenizer.ggml.pre */
    char reason[256];            /* why the engine refuses it (runs == 0) */
    /* Byte ranges inside buf (offset, length; length 0 when absent): tokenizer.chat_template and the texts of
     * the BOS and EOS tokens, which a chat template's bos_token / eos_token name. */
    uint64_t chat_template_at, chat_template_len, bos_at, bos_len, eos_at, eos_len;
} dte_host_model_desc;

/* Describe the GGUF in buf (the file, or the weights partition of an image). Returns 0 when the GGUF header
 * parsed (fields filled, runs/reason give the engine's verdict) or the parser's negative code (reason says why). */
int dte_host_model_describe(const void *buf, uint64_t size, dte_host_model_desc *out);

/* The tensor types the engine takes as weights, comma separated ("F32, F16, Q4_0, ..."). Returns the length. */
int dte_host_supported_types(char *buf, size_t cap);
/* The architectures the engine runs (engine/arch.c's table, refused entries left out), comma separated. */
int dte_host_supported_archs(char *buf, size_t cap);

#endif
