/* error.h - the one error convention shared by every binary.
 *
 * Fallible functions return 0 on success or a negative enms_err code, and
 * write a human-readable sentence into a caller-provided buffer (err, errlen)
 * when one is given. The caller decides what to do; nothing deep in the code
 * calls exit(). */
#ifndef ENMS_ERROR_H
#define ENMS_ERROR_H

#include <stddef.h>

enum enms_err {
    ENMS_OK = 0,
    ENMS_EINVAL = -1,    /* bad input from a user, a file or the environment */
    ENMS_ENOMEM = -2,    /* allocation failed */
    ENMS_EDB = -3,       /* PostgreSQL error or connection failure */
    ENMS_EREDIS = -4,    /* Redis error or connection failure */
    ENMS_EIO = -5,       /* file or socket I/O failed */
    ENMS_ENOTFOUND = -6, /* the thing asked for does not exist */
    ENMS_ECONFLICT = -7, /* state does not allow it (duplicate, already finished) */
    ENMS_ETOOBIG = -8,   /* input larger than the bound we accept */
    ENMS_EINTERNAL = -9, /* a bug: an invariant did not hold */
    ENMS_ESTOPPED = -10, /* work stopped on request (cancel, timeout, lost lease) */
};

/* Short constant name of a code, e.g. "invalid input". Never NULL. */
const char *enms_err_name(int code);

/* Formats into err (if err is non-NULL and errlen > 0) and returns code, so
 * a function can write `return enms_fail(err, errlen, ENMS_EINVAL, "...")`. */
int enms_fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
