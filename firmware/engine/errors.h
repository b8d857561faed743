/* The engine's error codes: one enum for the GGUF parser, the model loader, the tokenizer and the session
 * (engine.h), with a name table. Every engine function that fails returns one of these (negative) and writes a
 * one-line message naming the key or tensor at fault. Driver codes (NVMe, storage) are their own enums and are
 * never returned through the engine. Platform-free. */
#ifndef DTE_ENGINE_ERRORS_H
#define DTE_ENGINE_ERRORS_H

enum dte_err {
    DTE_OK = 0,
    /* GGUF container (gguf.c) */
    DTE_E_TRUNCATED = -1,    /* a field runs past the end of the buffer */
    DTE_E_MAGIC = -2,        /* not a GGUF file */
    DTE_E_VERSION = -3,      /* version other than 2 or 3 */
    DTE_E_TYPE = -4,         /* unknown value type or tensor type */
    DTE_E_RANGE = -5,        /* count, dimension, offset or alignment out of range */
    DTE_E_DUPLICATE = -6,    /* a key or tensor name appears twice */
    DTE_E_NOMEM = -7,        /* out of memory */
    DTE_E_MISSING = -8,      /* a required key or tensor is absent / has the wrong type */
    /* model (model_load.c, arch.c) */
    DTE_E_ARCH = -20,        /* general.architecture unknown or refused */
    DTE_E_HPARAM = -21,      /* a hyper-parameter is absent or out of range */
    DTE_E_TENSOR = -22,      /* a tensor is absent, of an unsupported type or mis-shaped */
    /* tokenizer (tokenizer.c) */
    DTE_E_TOKENIZER = -30,
    /* session (engine.c) */
    DTE_E_CONTEXT = -40,     /* the requested context does not fit, or the tokens do not fit the context */
    DTE_E_STREAM = -41,      /* a weight could not be made resident (read hook failed, not resident) */
    DTE_E_BUSY = -42,        /* dte_parallel_for is in use */
    DTE_E_ARG = -43,         /* bad argument (token id out of range, no tokens) */
};

/* "DTE_E_TENSOR" etc.; "DTE_E_UNKNOWN" for a code outside the enum. */
const char *dte_err_name(int code);

#endif /* DTE_ENGINE_ERRORS_H */
