/* ops.c - what the queue subcommands of enmsctl (status, jobs, cancel,
 * requeue, housekeeping) share: opening their PostgreSQL and Redis
 * connections, option parsing and table cells. The subcommands themselves
 * live in status.c, jobs.c and queue_ops.c. */
#include "ctl.h"
#include "../common/error.h"
#include "../common/pg.h"
#include "../common/redis.h"

#include <stdio.h>
#include <string.h>

int ctl_connect(const struct enms_config *cfg, int want_pg, int want_redis, const char *app,
                struct ctl_conn *conn, char *err, size_t errlen)
{
    struct redis_url url;
    char why[512];
    memset(conn, 0, sizeof *conn);
    if (want_pg) {
        conn->pg = pg_connect(cfg->pg_dsn, cfg->connect_timeout_ms, app, why, sizeof why);
        if (!conn->pg)
            return enms_fail(err, errlen, ENMS_EDB, "%s", why);
    }
    if (want_redis) {
        if (redis_url_parse(cfg->redis_url, &url, why, sizeof why) != ENMS_OK) {
            ctl_disconnect(conn);
            return enms_fail(err, errlen, ENMS_EINVAL, "ENMS_REDIS_URL: %s", why);
        }
        conn->redis =
            redis_connect(&url, cfg->connect_timeout_ms, cfg->io_timeout_ms, why, sizeof why);
        if (!conn->redis) {
            ctl_disconnect(conn);
            return enms_fail(err, errlen, ENMS_EREDIS, "%s", why);
        }
    }
    return ENMS_OK;
}

void ctl_disconnect(struct ctl_conn *conn)
{
    if (conn->redis)
        redisFree(conn->redis);
    if (conn->pg)
        PQfinish(conn->pg);
    conn->redis = NULL;
    conn->pg = NULL;
}

const char *ctl_option(int argc, char **argv, int *i, const char *name, int *missing)
{
    size_t n = strlen(name);
    const char *arg = argv[*i];
    if (strncmp(arg, name, n) != 0)
        return NULL;
    if (arg[n] == '=')
        return arg + n + 1;
    if (arg[n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    (*i)++;
    return argv[*i];
}

void ctl_cell(char *out, size_t outlen, const char *text)
{
    if (outlen == 0)
        return;
    size_t n = 0;
    for (const char *p = text ? text : ""; *p && n + 1 < outlen; p++)
        out[n++] = ((unsigned char)*p < 0x20 || *p == 0x7f) ? ' ' : *p;
    out[n] = '\0';
    if (text && strlen(text) >= outlen && outlen > 4)
        memcpy(out + outlen - 4, "...", 4);
}

int ctl_scan_pattern(char *buf, size_t buflen, const char *prefix, const char *suffix)
{
    size_t n = 0, slen = strlen(suffix);
    for (const char *p = prefix; *p; p++) {
        if (n + 2 >= buflen)
            return ENMS_ETOOBIG;
        if (strchr("*?[]\\", *p))
            buf[n++] = '\\';
        buf[n++] = *p;
    }
    if (n + slen >= buflen)
        return ENMS_ETOOBIG;
    memcpy(buf + n, suffix, slen + 1);
    return ENMS_OK;
}
