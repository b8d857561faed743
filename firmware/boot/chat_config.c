/* The compiled-in chat format and the boot prompt (see chat_config.h). */
#include "boot/chat_config.h"

#include "dte_config.h"
#include "runtime/platform.h"

#ifndef DTE_CHAT
#define DTE_CHAT 0
#endif
#ifndef DTE_BOOT_CHAT
#define DTE_BOOT_CHAT 0
#endif

#if DTE_CHAT
static const dte_chat_format format = {
    .prefix = DTE_CHAT_PREFIX,
    .prefix_system = DTE_CHAT_HAS_SYSTEM ? DTE_CHAT_PREFIX_SYSTEM : NULL,
    .system_end = DTE_CHAT_SYSTEM_END,
    .user_end = DTE_CHAT_USER_END,
    .assistant_end = DTE_CHAT_ASSISTANT_END,
    .strip_system = DTE_CHAT_STRIP_SYSTEM,
    .strip_user = DTE_CHAT_STRIP_USER,
};
#endif

const dte_chat_format *chat_config_format(void)
{
#if DTE_CHAT
    return &format;
#else
    return NULL;
#endif
}

const char *chat_config_boot_prompt(size_t *len, bool *chat)
{
#if DTE_CHAT && DTE_BOOT_CHAT
    static const char system[] = DTE_SYSTEM_PROMPT, user[] = DTE_CHAT_PROMPT;
    const char *sys = sizeof system > 1 ? system : NULL;   /* an empty system prompt: no system message */
    size_t need = dte_chat_first_turn(&format, sys, sizeof system - 1, user, sizeof user - 1, NULL, 0);
    char *text = dte_alloc(need + 1, 8);
    if (!text) {
        return NULL;
    }
    *len = dte_chat_first_turn(&format, sys, sizeof system - 1, user, sizeof user - 1, text, need + 1);
    *chat = true;
    return text;
#else
    static const char prompt[] = DTE_PROMPT;
    *len = sizeof prompt - 1;
    *chat = false;
    return prompt;
#endif
}
