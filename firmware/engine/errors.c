/* Names of the engine's error codes (errors.h). */
#include "errors.h"

const char *dte_err_name(int code)
{
    switch (code) {
    case DTE_OK: return "DTE_OK";
    case DTE_E_TRUNCATED: return "DTE_E_TRUNCATED";
    case DTE_E_MAGIC: return "DTE_E_MAGIC";
    case DTE_E_VERSION: return "DTE_E_VERSION";
    case DTE_E_TYPE: return "DTE_E_TYPE";
    case DTE_E_RANGE: return "DTE_E_RANGE";
    case DTE_E_DUPLICATE: return "DTE_E_DUPLICATE";
    case DTE_E_NOMEM: return "DTE_E_NOMEM";
    case DTE_E_MISSING: return "DTE_E_MISSING";
    case DTE_E_ARCH: return "DTE_E_ARCH";
    case DTE_E_HPARAM: return "DTE_E_HPARAM";
    case DTE_E_TENSOR: return "DTE_E_TENSOR";
    case DTE_E_TOKENIZER: return "DTE_E_TOKENIZER";
    case DTE_E_CONTEXT: return "DTE_E_CONTEXT";
    case DTE_E_STREAM: return "DTE_E_STREAM";
    case DTE_E_BUSY: return "DTE_E_BUSY";
    case DTE_E_ARG: return "DTE_E_ARG";
    default: return "DTE_E_UNKNOWN";
    }
}
