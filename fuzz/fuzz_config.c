/* fuzz_config.c - libFuzzer target for the configuration reader
 * (common/config.c, config_load_from) and the parsers it calls for each
 * ENMS_* variable (integers, intervals, numbers, strings, the log level,
 * the IPv4 bind address and the Redis URL).
 *
 * The input is an environment: NAME=value lines (a value ends at its line's
 * end or at a NUL byte, as in a real environment; the first of two equal
 * names wins, as getenv does). Whatever it holds, loading must refuse it with
 * ENMS_EINVAL and a message naming the variable, or give a configuration that
 * obeys the documented bounds (config.h, README) and the cross-checks. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../common/config.h"
#include "../common/error.h"
#include "../common/redis.h"

#define ENV_MAX 64 /* variables one input may set */

struct env {
    size_t n;
    char *name[ENV_MAX];
    char *value[ENV_MAX];
};

static const char *env_lookup(const char *name, void *ctx)
{
    const struct env *e = ctx;
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->name[i], name) == 0)
            return e->value[i];
    return NULL;
}

static int terminated(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

static int in_range(long v, long lo, long hi)
{
    return v >= lo && v <= hi;
}

/* 0 (off) or in [lo, hi]. */
static int interval_ok(long v, long lo, long hi)
{
    return v == 0 || in_range(v, lo, hi);
}

static void check_config(const struct enms_config *c)
{
    char err[256];
    struct redis_url u;
    if (!terminated(c->pg_dsn, sizeof c->pg_dsn) ||
        !terminated(c->redis_url, sizeof c->redis_url) ||
        !terminated(c->redis_prefix, sizeof c->redis_prefix) ||
        !terminated(c->http_addr, sizeof c->http_addr) ||
        !terminated(c->api_token, sizeof c->api_token) ||
        !terminated(c->web_root, sizeof c->web_root) ||
        !terminated(c->schema_dir, sizeof c->schema_dir) ||
        !terminated(c->worker_id, sizeof c->worker_id) ||
        !terminated(c->worker_host, sizeof c->worker_host) ||
        !terminated(c->activation_policy, sizeof c->activation_policy))
        abort();
    if (c->pg_dsn[0] == '\0' || c->redis_prefix[0] == '\0' || c->worker_id[0] == '\0' ||
        c->worker_host[0] == '\0')
        abort();
    if (redis_url_parse(c->redis_url, &u, err, sizeof err) != ENMS_OK)
        abort();
    if (!in_range(c->http_port, 1, 65535) || !in_range(c->http_threads, 2, 256) ||
        !in_range((long)c->http_max_body, 1024, 64L * 1024 * 1024) ||
        !in_range(c->http_timeout_ms, 1000, 600000) || !in_range(c->allow_insecure, 0, 1) ||
        !in_range(c->connect_timeout_ms, 100, 60000) || !in_range(c->io_timeout_ms, 100, 60000) ||
        !in_range(c->job_timeout_s, 10, 86400) || !in_range(c->heartbeat_interval_s, 1, 60) ||
        !in_range(c->heartbeat_ttl_s, 2, 600) || !in_range(c->max_attempts, 1, 20) ||
        !in_range(c->shutdown_grace_s, 0, 3600) || !in_range(c->job_done_ttl_s, 1, 604800) ||
        !in_range(c->enable_probe, 0, 1) || !in_range(c->housekeeping_interval_s, 1, 300) ||
        !in_range(c->redispatch_grace_s, 1, 3600) || !in_range(c->sse_max_streams, 1, 64) ||
        !in_range(c->auto_retrain, 0, 1) || !in_range(c->drift_cooldown_s, 0, 2592000) ||
        !in_range(c->drift_recent_days, 1, 90))
        abort();
    if (!interval_ok(c->eval_interval_s, 60, 2592000) ||
        !interval_ok(c->score_interval_s, 60, 2592000) ||
        !interval_ok(c->retrain_baseline_s, 3600, 31536000) ||
        !interval_ok(c->retrain_anomaly_s, 3600, 31536000) ||
        !interval_ok(c->retrain_forecast_s, 3600, 31536000))
        abort();
    if (!(c->drift_psi >= 0.01 && c->drift_psi <= 10) ||
        !(c->drift_ks_alpha >= 0.0001 && c->drift_ks_alpha <= 0.2) ||
        !(c->drift_perf >= 0.01 && c->drift_perf <= 10))
        abort();
    /* The cross-checks config.c documents. */
    if (c->heartbeat_ttl_s <= c->heartbeat_interval_s || c->sse_max_streams >= c->http_threads)
        abort();
    if (strcmp(c->activation_policy, "better") != 0 &&
        strcmp(c->activation_policy, "always") != 0 && strcmp(c->activation_policy, "manual") != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct env env = {.n = 0};
    struct enms_config *cfg = malloc(sizeof *cfg);
    char err[512];
    size_t pos = 0;
    if (!cfg)
        abort();

    /* NAME=value lines; copies, so each value ends where getenv's would. */
    while (pos < size && env.n < ENV_MAX) {
        const char *line = (const char *)data + pos;
        const char *nl = memchr(line, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - line) : size - pos;
        pos += len + 1;
        const char *eq = memchr(line, '=', len);
        if (!eq)
            continue;
        size_t nlen = (size_t)(eq - line);
        env.name[env.n] = strndup(line, nlen);
        env.value[env.n] = strndup(eq + 1, len - nlen - 1);
        if (!env.name[env.n] || !env.value[env.n])
            abort();
        env.n++;
    }

    err[0] = '\0';
    int rc = config_load_from(cfg, env_lookup, &env, err, sizeof err);
    if (rc == ENMS_OK)
        check_config(cfg);
    else if (rc != ENMS_EINVAL || !strstr(err, "ENMS_"))
        abort(); /* a refusal names the variable */

    for (size_t i = 0; i < env.n; i++) {
        free(env.name[i]);
        free(env.value[i]);
    }
    free(cfg);
    return 0;
}
