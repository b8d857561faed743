/* The chat format `dte build` compiled in (dte_config.h DTE_CHAT_*, cut from the model's chat template by
 * src/dte_build/chat_template.py) and the boot prompt's text: the build's prompt as a plain completion, or with
 * `dte build --chat` a first chat turn (the persona's system prompt, the prompt as the user's message and the
 * generation prompt). For the boot prompt (boot/run_engine.c) and network sessions (boot/net_engine.c). */
#ifndef DTE_BOOT_CHAT_CONFIG_H
#define DTE_BOOT_CHAT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/chat.h"

/* The compiled-in chat format; NULL when the model has none (plain completion). */
const dte_chat_format *chat_config_format(void);

/* The boot prompt's text and length. *chat: it is a chat turn, to be tokenized with special tokens parsed and
 * no BOS added (llama-cpp-python's chat handler). NULL when out of memory. */
const char *chat_config_boot_prompt(size_t *len, bool *chat);

#endif /* DTE_BOOT_CHAT_CONFIG_H */
