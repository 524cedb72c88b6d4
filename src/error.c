#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define BN_ERRMSG_MAX 1024

static _Thread_local bn_status last_status = BN_OK;
static _Thread_local char last_message[BN_ERRMSG_MAX];

static void record(bn_status s, const char *fmt, va_list ap)
{
    last_status = s;
    vsnprintf(last_message, sizeof last_message, fmt, ap);
}

bn_status bn_fail(bn_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    record(s, fmt, ap);
    va_end(ap);
    return s;
}

void *bn_fail_null(bn_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    record(s, fmt, ap);
    va_end(ap);
    return NULL;
}

void bn_error_prefix(const char *fmt, ...)
{
    char prefix[256], old[BN_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_message, sizeof old);
    size_t n = strlen(prefix);
    if (n >= sizeof last_message) n = sizeof last_message - 1;
    memcpy(last_message, prefix, n);
    size_t rest = strnlen(old, sizeof old - 1);
    if (rest > sizeof last_message - 1 - n) rest = sizeof last_message - 1 - n;
    memcpy(last_message + n, old, rest);
    last_message[n + rest] = '\0';
}

bn_status bn_last_status(void) { return last_status; }
const char *bn_last_error(void) { return last_status == BN_OK ? "" : last_message; }

void bn_clear_error(void)
{
    last_status = BN_OK;
    last_message[0] = '\0';
}

const char *bn_status_name(bn_status s)
{
    switch (s) {
    case BN_OK: return "BN_OK";
    case BN_EARG: return "BN_EARG";
    case BN_ESHAPE: return "BN_ESHAPE";
    case BN_ENOMEM: return "BN_ENOMEM";
    case BN_EIO: return "BN_EIO";
    case BN_EFORMAT: return "BN_EFORMAT";
    case BN_ESTATE: return "BN_ESTATE";
    }
    return "BN_E?";
}
