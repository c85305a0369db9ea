/* config.c - reads and validates the ENMS_* environment (see config.h).
 *
 * Defaults are chosen so that a developer's `make run` needs no variables at
 * all, and so that the defaults are the safe ones (loopback bind, timeouts
 * on every connection). */
#include "config.h"
#include "error.h"
#include "redis.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const struct config_var config_vars[] = {
    {"ENMS_PG_DSN", "postgresql://postgres@127.0.0.1:5432/enms",
     "PostgreSQL connection (URL or key=value)"},
    {"ENMS_REDIS_URL", "redis://127.0.0.1:6379/0",
     "Redis: redis://[[user]:password@]host[:port][/db]"},
    {"ENMS_REDIS_PREFIX", "{enms}",
     "prefix of every Redis key; keep the {hash tag} for Redis Cluster"},
    {"ENMS_HTTP_ADDR", "127.0.0.1", "IPv4 address the API binds"},
    {"ENMS_HTTP_PORT", "8080", "API port (1-65535)"},
    {"ENMS_HTTP_THREADS", "16", "API worker threads (2-256)"},
    {"ENMS_HTTP_MAX_BODY", "65536", "largest request body accepted, bytes (1 KiB-64 MiB)"},
    {"ENMS_HTTP_TIMEOUT_MS", "30000",
     "a request must be read and answered within this (1000-600000)"},
    {"ENMS_API_TOKEN", "(empty)", "bearer token required on /api when set"},
    {"ENMS_ALLOW_INSECURE", "0", "1 allows a non-loopback bind without a token"},
    {"ENMS_WEB_ROOT", "<install>/web", "dashboard folder served at /"},
    {"ENMS_SCHEMA_DIR", "<install>/schema", "folder of NNN_name.sql migrations"},
    {"ENMS_LOG_LEVEL", "info", "debug, info, warn or error"},
    {"ENMS_CONNECT_TIMEOUT_MS", "5000", "connect timeout for PostgreSQL and Redis (100-60000)"},
    {"ENMS_IO_TIMEOUT_MS", "5000", "Redis read/write timeout (100-60000)"},
    {"ENMS_JOB_TIMEOUT_S", "1800", "a running job is failed after this long (10-86400)"},
    {"ENMS_HEARTBEAT_INTERVAL_S", "3", "worker heartbeat period (1-60)"},
    {"ENMS_HEARTBEAT_TTL_S", "12", "a worker silent this long is dead (2-600, > interval)"},
    {"ENMS_MAX_ATTEMPTS", "3", "attempts before a job is dead-lettered (1-20)"},
    {"ENMS_STUCK_PROGRESS_S", "900",
     "a running job whose progress has not moved this long is re-queued (0 off, 2-86400)"},
    {"ENMS_SHUTDOWN_GRACE_S", "30", "time a stopping worker gives its job (0-3600)"},
    {"ENMS_JOB_DONE_TTL_S", "3600",
     "a finished job's live hash in Redis expires after this long (1-604800)"},
    {"ENMS_WORKER_ID", "<host>-<pid>", "worker identity in Redis ([A-Za-z0-9._-], 1-100)"},
    {"ENMS_WORKER_HOST", "<hostname>", "host name a worker reports ([A-Za-z0-9._-], 1-63)"},
    {"ENMS_ENABLE_PROBE", "0", "1 accepts model_type=probe test jobs"},
    {"ENMS_HOUSEKEEPING_INTERVAL_S", "2", "how often housekeeping runs (1-300)"},
    {"ENMS_REDISPATCH_GRACE_S", "10",
     "a pending job missing from Redis this long is pushed again (1-3600)"},
    {"ENMS_SSE_MAX_STREAMS", "4", "open event streams allowed (1-64, < ENMS_HTTP_THREADS)"},
    {"ENMS_EVAL_INTERVAL_S", "86400", "evaluate every active model this often (0 off, 60-2592000)"},
    {"ENMS_SCORE_INTERVAL_S", "3600",
     "score new readings with active anomaly models this often (0 off, 60-2592000)"},
    {"ENMS_RETRAIN_BASELINE_S", "604800",
     "retrain baselines whose active version is older (0 off, 3600-31536000)"},
    {"ENMS_RETRAIN_ANOMALY_S", "86400", "same for anomaly models (0 off, 3600-31536000)"},
    {"ENMS_RETRAIN_FORECAST_S", "86400", "same for forecast models (0 off, 3600-31536000)"},
    {"ENMS_AUTO_RETRAIN", "1", "1 triggers a retrain when drift is detected"},
    {"ENMS_DRIFT_COOLDOWN_S", "86400",
     "at most one drift retrain per model this often (0-2592000)"},
    {"ENMS_DRIFT_RECENT_DAYS", "7", "days of recent readings a drift check compares (1-90)"},
    {"ENMS_DRIFT_PSI", "0.25",
     "population stability index above which a feature drifted (0.01-10)"},
    {"ENMS_DRIFT_KS_ALPHA", "0.01",
     "significance of the KS test on the effective sample size (0.0001-0.2)"},
    {"ENMS_DRIFT_PERF", "0.5",
     "relative degradation of the main error metric that is concept drift (0.01-10)"},
    {"ENMS_ACTIVATION_POLICY", "better",
     "new versions: better (activate when better or none active), always, or manual"},
};
const size_t config_var_count = sizeof config_vars / sizeof config_vars[0];

int config_parse_int(const char *text, long min, long max, long *out)
{
    char *end = NULL;
    if (!text || !*text)
        return ENMS_EINVAL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || end == text || v < min || v > max)
        return ENMS_EINVAL;
    *out = v;
    return ENMS_OK;
}

int config_parse_double(const char *text, double min, double max, double *out)
{
    char *end = NULL;
    if (!text || !*text)
        return ENMS_EINVAL;
    errno = 0;
    double v = strtod(text, &end);
    if (errno != 0 || *end != '\0' || end == text || !isfinite(v) || v < min || v > max)
        return ENMS_EINVAL;
    *out = v;
    return ENMS_OK;
}

/* Copies src into out when it fits; a path too long to hold is not used. */
static void copy_path(char *out, size_t outlen, const char *src)
{
    size_t n = strlen(src);
    if (n < outlen)
        memcpy(out, src, n + 1);
}

/* Finds <name> beside the binary's build tree (build/bin/.. or
 * build/asan/bin/.., looking up to four folders above the executable), or
 * the installed copy under /usr/share; writes "" when neither exists. */
static void default_data_dir(const char *name, char *out, size_t outlen)
{
    char exe[PATH_MAX];
    char candidate[PATH_MAX + 64];
    char resolved[PATH_MAX];
    struct stat st;
    out[0] = '\0';
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        const char *ups[] = {"..", "../..", "../../..", "../../../.."};
        for (size_t i = 0; i < sizeof ups / sizeof ups[0]; i++) {
            snprintf(candidate, sizeof candidate, "%s/%s/%s", exe, ups[i], name);
            if (stat(candidate, &st) == 0 && S_ISDIR(st.st_mode) && realpath(candidate, resolved)) {
                copy_path(out, outlen, resolved);
                return;
            }
        }
    }
    snprintf(candidate, sizeof candidate, "/usr/share/enms-retrain/%s", name);
    if (stat(candidate, &st) == 0 && S_ISDIR(st.st_mode))
        copy_path(out, outlen, candidate);
}

static int read_string(const char *value, const char *name, const char *fallback, char *dst,
                       size_t dstlen, char *err, size_t errlen)
{
    const char *v = value ? value : fallback;
    if (strlen(v) >= dstlen)
        return enms_fail(err, errlen, ENMS_EINVAL, "%s: longer than %zu characters", name,
                         dstlen - 1);
    for (const char *p = v; *p; p++) {
        if ((unsigned char)*p < 0x20)
            return enms_fail(err, errlen, ENMS_EINVAL, "%s: contains a control character", name);
    }
    memcpy(dst, v, strlen(v) + 1);
    return ENMS_OK;
}

static int read_int(const char *value, const char *name, long def, long min, long max, int *dst,
                    char *err, size_t errlen)
{
    long v = def;
    if (value && config_parse_int(value, min, max, &v) != ENMS_OK)
        return enms_fail(err, errlen, ENMS_EINVAL, "%s: \"%.40s\" is not an integer in %ld..%ld",
                         name, value, min, max);
    *dst = (int)v;
    return ENMS_OK;
}

static int read_double(const char *value, const char *name, double def, double min, double max,
                       double *dst, char *err, size_t errlen)
{
    double v = def;
    if (value && config_parse_double(value, min, max, &v) != ENMS_OK)
        return enms_fail(err, errlen, ENMS_EINVAL, "%s: \"%.40s\" is not a number in %g..%g", name,
                         value, min, max);
    *dst = v;
    return ENMS_OK;
}

/* An interval that is 0 (off) or in [min, max]. */
static int read_interval(const char *value, const char *name, long def, long min, long max,
                         int *dst, char *err, size_t errlen)
{
    long v = def;
    if (value && (config_parse_int(value, 0, max, &v) != ENMS_OK || (v != 0 && v < min)))
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "%s: \"%.40s\" is not 0 or an integer in %ld..%ld", name, value, min, max);
    *dst = (int)v;
    return ENMS_OK;
}

/* Worker ids become parts of Redis keys, so they are kept to a safe alphabet. */
static int is_worker_id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

static int valid_worker_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 100)
        return 0;
    for (const char *p = id; *p; p++) {
        if (!is_worker_id_char(*p))
            return 0;
    }
    return 1;
}

static void config_defaults(struct enms_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->http_port = 8080;
    cfg->http_threads = 16;
    cfg->http_max_body = 65536;
    cfg->http_timeout_ms = 30000;
    cfg->log_level = LOG_INFO;
    cfg->connect_timeout_ms = 5000;
    cfg->io_timeout_ms = 5000;
    cfg->job_timeout_s = 1800;
    cfg->heartbeat_interval_s = 3;
    cfg->heartbeat_ttl_s = 12;
    cfg->max_attempts = 3;
    cfg->stuck_progress_s = 900;
    cfg->shutdown_grace_s = 30;
    cfg->job_done_ttl_s = 3600;
    cfg->housekeeping_interval_s = 2;
    cfg->redispatch_grace_s = 10;
    cfg->sse_max_streams = 4;
    cfg->eval_interval_s = 86400;
    cfg->score_interval_s = 3600;
    cfg->retrain_baseline_s = 604800;
    cfg->retrain_anomaly_s = 86400;
    cfg->retrain_forecast_s = 86400;
    cfg->auto_retrain = 1;
    cfg->drift_cooldown_s = 86400;
    cfg->drift_recent_days = 7;
    cfg->drift_psi = 0.25;
    cfg->drift_ks_alpha = 0.01;
    cfg->drift_perf = 0.5;
    snprintf(cfg->activation_policy, sizeof cfg->activation_policy, "better");
}

int config_load_from(struct enms_config *cfg, const char *(*lookup)(const char *name, void *ctx),
                     void *ctx, char *err, size_t errlen)
{
    int rc;
    const char *v;
    struct in_addr addr;
    struct redis_url parsed;
    char why[256];

    config_defaults(cfg);

#define STR(var, field, def)                                                                       \
    if ((rc = read_string(lookup(var, ctx), var, def, cfg->field, sizeof cfg->field, err,          \
                          errlen)) != ENMS_OK)                                                     \
        goto done;
#define INT(var, field, def, min, max)                                                             \
    if ((rc = read_int(lookup(var, ctx), var, def, min, max, &cfg->field, err, errlen)) !=         \
        ENMS_OK)                                                                                   \
        goto done;
#define IVL(var, field, def, min, max)                                                             \
    if ((rc = read_interval(lookup(var, ctx), var, def, min, max, &cfg->field, err, errlen)) !=    \
        ENMS_OK)                                                                                   \
        goto done;
#define DBL(var, field, def, min, max)                                                             \
    if ((rc = read_double(lookup(var, ctx), var, def, min, max, &cfg->field, err, errlen)) !=      \
        ENMS_OK)                                                                                   \
        goto done;

    STR("ENMS_PG_DSN", pg_dsn, "postgresql://postgres@127.0.0.1:5432/enms");
    STR("ENMS_REDIS_URL", redis_url, "redis://127.0.0.1:6379/0");
    STR("ENMS_REDIS_PREFIX", redis_prefix, "{enms}");
    STR("ENMS_HTTP_ADDR", http_addr, "127.0.0.1");
    INT("ENMS_HTTP_PORT", http_port, 8080, 1, 65535);
    INT("ENMS_HTTP_THREADS", http_threads, 16, 2, 256);
    INT("ENMS_HTTP_TIMEOUT_MS", http_timeout_ms, 30000, 1000, 600000);
    STR("ENMS_API_TOKEN", api_token, "");
    INT("ENMS_ALLOW_INSECURE", allow_insecure, 0, 0, 1);
    STR("ENMS_WEB_ROOT", web_root, "");
    STR("ENMS_SCHEMA_DIR", schema_dir, "");
    INT("ENMS_CONNECT_TIMEOUT_MS", connect_timeout_ms, 5000, 100, 60000);
    INT("ENMS_IO_TIMEOUT_MS", io_timeout_ms, 5000, 100, 60000);
    INT("ENMS_JOB_TIMEOUT_S", job_timeout_s, 1800, 10, 86400);
    INT("ENMS_HEARTBEAT_INTERVAL_S", heartbeat_interval_s, 3, 1, 60);
    INT("ENMS_HEARTBEAT_TTL_S", heartbeat_ttl_s, 12, 2, 600);
    INT("ENMS_MAX_ATTEMPTS", max_attempts, 3, 1, 20);
    IVL("ENMS_STUCK_PROGRESS_S", stuck_progress_s, 900, 2, 86400);
    INT("ENMS_SHUTDOWN_GRACE_S", shutdown_grace_s, 30, 0, 3600);
    INT("ENMS_JOB_DONE_TTL_S", job_done_ttl_s, 3600, 1, 604800);
    STR("ENMS_WORKER_ID", worker_id, "");
    STR("ENMS_WORKER_HOST", worker_host, "");
    INT("ENMS_ENABLE_PROBE", enable_probe, 0, 0, 1);
    INT("ENMS_HOUSEKEEPING_INTERVAL_S", housekeeping_interval_s, 2, 1, 300);
    INT("ENMS_REDISPATCH_GRACE_S", redispatch_grace_s, 10, 1, 3600);
    INT("ENMS_SSE_MAX_STREAMS", sse_max_streams, 4, 1, 64);
    IVL("ENMS_EVAL_INTERVAL_S", eval_interval_s, 86400, 60, 2592000);
    IVL("ENMS_SCORE_INTERVAL_S", score_interval_s, 3600, 60, 2592000);
    IVL("ENMS_RETRAIN_BASELINE_S", retrain_baseline_s, 604800, 3600, 31536000);
    IVL("ENMS_RETRAIN_ANOMALY_S", retrain_anomaly_s, 86400, 3600, 31536000);
    IVL("ENMS_RETRAIN_FORECAST_S", retrain_forecast_s, 86400, 3600, 31536000);
    INT("ENMS_AUTO_RETRAIN", auto_retrain, 1, 0, 1);
    INT("ENMS_DRIFT_COOLDOWN_S", drift_cooldown_s, 86400, 0, 2592000);
    INT("ENMS_DRIFT_RECENT_DAYS", drift_recent_days, 7, 1, 90);
    DBL("ENMS_DRIFT_PSI", drift_psi, 0.25, 0.01, 10);
    DBL("ENMS_DRIFT_KS_ALPHA", drift_ks_alpha, 0.01, 0.0001, 0.2);
    DBL("ENMS_DRIFT_PERF", drift_perf, 0.5, 0.01, 10);
    STR("ENMS_ACTIVATION_POLICY", activation_policy, "better");
#undef STR
#undef INT
#undef IVL
#undef DBL

    int max_body = 65536;
    if ((rc = read_int(lookup("ENMS_HTTP_MAX_BODY", ctx), "ENMS_HTTP_MAX_BODY", 65536, 1024,
                       64L * 1024 * 1024, &max_body, err, errlen)) != ENMS_OK)
        goto done;
    cfg->http_max_body = (size_t)max_body;

    v = lookup("ENMS_LOG_LEVEL", ctx);
    if (v && log_level_parse(v, &cfg->log_level) != ENMS_OK) {
        rc = enms_fail(err, errlen, ENMS_EINVAL,
                       "ENMS_LOG_LEVEL: \"%.40s\" is not one of debug, info, warn, error", v);
        goto done;
    }
    if (strcmp(cfg->activation_policy, "better") != 0 &&
        strcmp(cfg->activation_policy, "always") != 0 &&
        strcmp(cfg->activation_policy, "manual") != 0) {
        rc = enms_fail(err, errlen, ENMS_EINVAL,
                       "ENMS_ACTIVATION_POLICY: \"%.15s\" is not one of better, always, manual",
                       cfg->activation_policy);
        goto done;
    }
    if (cfg->pg_dsn[0] == '\0') {
        rc = enms_fail(err, errlen, ENMS_EINVAL, "ENMS_PG_DSN: must not be empty");
        goto done;
    }
    if (inet_pton(AF_INET, cfg->http_addr, &addr) != 1) {
        rc = enms_fail(err, errlen, ENMS_EINVAL,
                       "ENMS_HTTP_ADDR: \"%.64s\" is not an IPv4 address (IPv6 is not supported)",
                       cfg->http_addr);
        goto done;
    }
    if (redis_url_parse(cfg->redis_url, &parsed, why, sizeof why) != ENMS_OK) {
        rc = enms_fail(err, errlen, ENMS_EINVAL, "ENMS_REDIS_URL: %s", why);
        goto done;
    }
    if (cfg->redis_prefix[0] == '\0') {
        rc = enms_fail(err, errlen, ENMS_EINVAL, "ENMS_REDIS_PREFIX: must not be empty");
        goto done;
    }
    if (cfg->heartbeat_ttl_s <= cfg->heartbeat_interval_s) {
        rc = enms_fail(err, errlen, ENMS_EINVAL,
                       "ENMS_HEARTBEAT_TTL_S (%d) must be greater than "
                       "ENMS_HEARTBEAT_INTERVAL_S (%d)",
                       cfg->heartbeat_ttl_s, cfg->heartbeat_interval_s);
        goto done;
    }
    if (cfg->sse_max_streams >= cfg->http_threads) {
        rc = enms_fail(err, errlen, ENMS_EINVAL,
                       "ENMS_SSE_MAX_STREAMS (%d) must be below ENMS_HTTP_THREADS (%d): each "
                       "stream holds a thread",
                       cfg->sse_max_streams, cfg->http_threads);
        goto done;
    }
    if (cfg->worker_host[0] == '\0') {
        if (gethostname(cfg->worker_host, sizeof cfg->worker_host - 1) != 0 ||
            cfg->worker_host[0] == '\0')
            snprintf(cfg->worker_host, sizeof cfg->worker_host, "host");
        cfg->worker_host[sizeof cfg->worker_host - 1] = '\0';
        for (char *p = cfg->worker_host; *p; p++) {
            if (!is_worker_id_char(*p))
                *p = '-';
        }
    } else if (strlen(cfg->worker_host) > 63 || !valid_worker_id(cfg->worker_host)) {
        rc = enms_fail(err, errlen, ENMS_EINVAL,
                       "ENMS_WORKER_HOST: use 1-63 characters of A-Z a-z 0-9 . _ -");
        goto done;
    }
    if (cfg->worker_id[0] == '\0') {
        snprintf(cfg->worker_id, sizeof cfg->worker_id, "%s-%ld", cfg->worker_host, (long)getpid());
        for (char *p = cfg->worker_id; *p; p++) {
            if (!is_worker_id_char(*p))
                *p = '-';
        }
    } else if (!valid_worker_id(cfg->worker_id)) {
        rc = enms_fail(err, errlen, ENMS_EINVAL,
                       "ENMS_WORKER_ID: use 1-100 characters of A-Z a-z 0-9 . _ -");
        goto done;
    }
    if (cfg->web_root[0] == '\0')
        default_data_dir("web", cfg->web_root, sizeof cfg->web_root);
    if (cfg->schema_dir[0] == '\0')
        default_data_dir("schema", cfg->schema_dir, sizeof cfg->schema_dir);
    rc = ENMS_OK;
done:
    return rc;
}

static const char *lookup_environ(const char *name, void *ctx)
{
    (void)ctx;
    return getenv(name);
}

int config_load(struct enms_config *cfg, char *err, size_t errlen)
{
    return config_load_from(cfg, lookup_environ, NULL, err, errlen);
}
