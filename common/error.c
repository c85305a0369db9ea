/* error.c - names of error codes and the helper that fills error buffers. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>

const char *enms_err_name(int code)
{
    switch (code) {
    case ENMS_OK:
        return "ok";
    case ENMS_EINVAL:
        return "invalid input";
    case ENMS_ENOMEM:
        return "out of memory";
    case ENMS_EDB:
        return "database error";
    case ENMS_EREDIS:
        return "redis error";
    case ENMS_EIO:
        return "i/o error";
    case ENMS_ENOTFOUND:
        return "not found";
    case ENMS_ECONFLICT:
        return "conflict";
    case ENMS_ETOOBIG:
        return "too large";
    case ENMS_EINTERNAL:
        return "internal error";
    case ENMS_ESTOPPED:
        return "stopped";
    }
    return "unknown error";
}

int enms_fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}
