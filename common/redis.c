/* redis.c - Redis URL parsing and connection helpers (see redis.h). */
#include "redis.h"
#include "config.h"
#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Copies [start, start+len) into dst (size dstlen) with a NUL; 0 or -1 when
 * it does not fit. */
static int copy_span(char *dst, size_t dstlen, const char *start, size_t len)
{
    if (len >= dstlen)
        return -1;
    memcpy(dst, start, len);
    dst[len] = '\0';
    return 0;
}

int redis_url_parse(const char *url, struct redis_url *out, char *err, size_t errlen)
{
    static const char scheme[] = "redis://";
    const char *p, *at, *host_end, *slash;
    char number[16];
    long value;

    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (!url || strncmp(url, scheme, sizeof scheme - 1) != 0)
        return enms_fail(err, errlen, ENMS_EINVAL, "must start with redis://");
    p = url + sizeof scheme - 1;
    slash = strchr(p, '/');
    /* Credentials end at the last '@' before the path, so a password may
     * itself contain '@'. */
    at = NULL;
    for (const char *q = p; *q && (!slash || q < slash); q++) {
        if (*q == '@')
            at = q;
    }
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon)
            return enms_fail(err, errlen, ENMS_EINVAL,
                             "credentials must be [user]:password@ (the colon is missing)");
        if (copy_span(out->username, sizeof out->username, p, (size_t)(colon - p)) != 0 ||
            copy_span(out->password, sizeof out->password, colon + 1, (size_t)(at - colon - 1)) !=
                0)
            return enms_fail(err, errlen, ENMS_EINVAL, "user name or password too long");
        p = at + 1;
    }
    host_end = slash ? slash : p + strlen(p);
    const char *colon = memchr(p, ':', (size_t)(host_end - p));
    const char *name_end = colon ? colon : host_end;
    if (name_end == p)
        return enms_fail(err, errlen, ENMS_EINVAL, "host is missing");
    if (copy_span(out->host, sizeof out->host, p, (size_t)(name_end - p)) != 0)
        return enms_fail(err, errlen, ENMS_EINVAL, "host name too long");
    for (const char *q = out->host; *q; q++) {
        char c = *q;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_'))
            return enms_fail(err, errlen, ENMS_EINVAL, "host contains '%c'", c);
    }
    if (colon) {
        if (copy_span(number, sizeof number, colon + 1, (size_t)(host_end - colon - 1)) != 0 ||
            config_parse_int(number, 1, 65535, &value) != ENMS_OK)
            return enms_fail(err, errlen, ENMS_EINVAL, "port must be a number in 1..65535");
        out->port = (int)value;
    }
    if (slash && slash[1] != '\0') {
        if (copy_span(number, sizeof number, slash + 1, strlen(slash + 1)) != 0 ||
            config_parse_int(number, 0, 10000, &value) != ENMS_OK)
            return enms_fail(err, errlen, ENMS_EINVAL, "database must be a number in 0..10000");
        out->db = (int)value;
    }
    return ENMS_OK;
}

static int reply_ok(redisContext *ctx, redisReply *reply, const char *what, char *err,
                    size_t errlen)
{
    int rc = ENMS_OK;
    if (!reply)
        rc = enms_fail(err, errlen, ENMS_EREDIS, "redis: %s: %s", what,
                       ctx->errstr[0] ? ctx->errstr : "no reply");
    else if (reply->type == REDIS_REPLY_ERROR)
        rc = enms_fail(err, errlen, ENMS_EREDIS, "redis: %s: %s", what, reply->str);
    if (reply)
        freeReplyObject(reply);
    return rc;
}

redisContext *redis_connect(const struct redis_url *url, int connect_timeout_ms, int io_timeout_ms,
                            char *err, size_t errlen)
{
    struct timeval ct = {connect_timeout_ms / 1000, (connect_timeout_ms % 1000) * 1000};
    struct timeval io = {io_timeout_ms / 1000, (io_timeout_ms % 1000) * 1000};
    redisContext *ctx = redisConnectWithTimeout(url->host, url->port, ct);
    if (!ctx) {
        enms_fail(err, errlen, ENMS_ENOMEM, "redis: out of memory");
        return NULL;
    }
    if (ctx->err) {
        enms_fail(err, errlen, ENMS_EREDIS, "redis: cannot connect to %s:%d: %s", url->host,
                  url->port, ctx->errstr);
        goto fail;
    }
    /* Connect timeout and I/O timeout are separate in hiredis: without this a
     * dead server would block a read forever. */
    if (redisSetTimeout(ctx, io) != REDIS_OK) {
        enms_fail(err, errlen, ENMS_EREDIS, "redis: cannot set timeout: %s", ctx->errstr);
        goto fail;
    }
    if (url->password[0]) {
        redisReply *r = url->username[0]
                            ? redisCommand(ctx, "AUTH %s %s", url->username, url->password)
                            : redisCommand(ctx, "AUTH %s", url->password);
        if (reply_ok(ctx, r, "AUTH", err, errlen) != ENMS_OK)
            goto fail;
    }
    if (url->db != 0 &&
        reply_ok(ctx, redisCommand(ctx, "SELECT %d", url->db), "SELECT", err, errlen) != ENMS_OK)
        goto fail;
    return ctx;
fail:
    redisFree(ctx);
    return NULL;
}

/* An idle context whose server went away (a restart, a killed server)
 * still has err == 0 until a command fails on it. Between commands nothing
 * may wait on the socket of a context that is not subscribed: a peek that
 * finds the end of the stream, an error, or stray bytes means the context
 * is no longer usable. MSG_DONTWAIT: the check never blocks. */
static int redis_still_open(const redisContext *ctx)
{
    char byte;
    ssize_t n = recv(ctx->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
}

int redis_ensure(redisContext **ctx, const struct redis_url *url, int connect_timeout_ms,
                 int io_timeout_ms, char *err, size_t errlen)
{
    if (*ctx && (*ctx)->err == 0 && redis_still_open(*ctx))
        return ENMS_OK;
    if (*ctx) {
        redisFree(*ctx);
        *ctx = NULL;
    }
    *ctx = redis_connect(url, connect_timeout_ms, io_timeout_ms, err, errlen);
    return *ctx ? ENMS_OK : ENMS_EREDIS;
}

int redis_ping(redisContext *ctx, char *err, size_t errlen)
{
    if (!ctx)
        return enms_fail(err, errlen, ENMS_EREDIS, "redis: not connected");
    redisReply *r = redisCommand(ctx, "PING");
    int rc = ENMS_OK;
    if (!r || r->type != REDIS_REPLY_STATUS || strcmp(r->str, "PONG") != 0)
        rc = enms_fail(err, errlen, ENMS_EREDIS, "redis: PING failed: %s",
                       r ? (r->str ? r->str : "unexpected reply") : ctx->errstr);
    if (r)
        freeReplyObject(r);
    return rc;
}

int redis_key(char *buf, size_t buflen, const char *prefix, const char *suffix)
{
    int n = snprintf(buf, buflen, "%s:%s", prefix, suffix);
    if (n < 0 || (size_t)n >= buflen)
        return ENMS_ETOOBIG;
    return ENMS_OK;
}
