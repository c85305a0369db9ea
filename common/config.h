/* config.h - configuration read once from ENMS_* environment variables.
 *
 * Every binary calls config_load() at start-up; the struct is then treated as
 * read-only for the life of the process. Each variable has a default, and a
 * bad value (not a number, out of range, malformed URL) is an error that names
 * the variable, so a typo never silently becomes a default. The README's
 * configuration table lists the same variables as config_vars[]; a test
 * checks that the two agree. */
#ifndef ENMS_CONFIG_H
#define ENMS_CONFIG_H

#include <stddef.h>

#include "log.h"

#define CONFIG_STR_MAX 512

struct enms_config {
    char pg_dsn[CONFIG_STR_MAX];     /* ENMS_PG_DSN: libpq URL or key=value string */
    char redis_url[CONFIG_STR_MAX];  /* ENMS_REDIS_URL: redis://[:pass@]host[:port][/db] */
    char redis_prefix[64];           /* ENMS_REDIS_PREFIX: key prefix incl. hash tag */
    char http_addr[64];              /* ENMS_HTTP_ADDR: IPv4 address to bind */
    int http_port;                   /* ENMS_HTTP_PORT */
    int http_threads;                /* ENMS_HTTP_THREADS: civetweb worker threads */
    size_t http_max_body;            /* ENMS_HTTP_MAX_BODY: request body cap, bytes */
    int http_timeout_ms;             /* ENMS_HTTP_TIMEOUT_MS: civetweb request_timeout_ms */
    char api_token[CONFIG_STR_MAX];  /* ENMS_API_TOKEN: empty means no auth */
    int allow_insecure;              /* ENMS_ALLOW_INSECURE: 1 permits public bind w/o token */
    char web_root[CONFIG_STR_MAX];   /* ENMS_WEB_ROOT: dashboard folder (absolute once loaded) */
    char schema_dir[CONFIG_STR_MAX]; /* ENMS_SCHEMA_DIR: migrations folder */
    enum log_level log_level;        /* ENMS_LOG_LEVEL */
    int connect_timeout_ms;          /* ENMS_CONNECT_TIMEOUT_MS: PG and Redis connect */
    int io_timeout_ms;               /* ENMS_IO_TIMEOUT_MS: Redis read/write timeout */
    int job_timeout_s;               /* ENMS_JOB_TIMEOUT_S */
    int heartbeat_interval_s;        /* ENMS_HEARTBEAT_INTERVAL_S */
    int heartbeat_ttl_s;             /* ENMS_HEARTBEAT_TTL_S */
    int max_attempts;                /* ENMS_MAX_ATTEMPTS */
    int stuck_progress_s;            /* ENMS_STUCK_PROGRESS_S: 0 = off */
    int shutdown_grace_s;            /* ENMS_SHUTDOWN_GRACE_S */
    int job_done_ttl_s;              /* ENMS_JOB_DONE_TTL_S: live hash TTL once final */
    char worker_id[128];             /* ENMS_WORKER_ID: default host-pid */
    char worker_host[64];            /* ENMS_WORKER_HOST: default gethostname(), sanitised */
    int enable_probe;                /* ENMS_ENABLE_PROBE: 1 accepts model_type=probe */
    int housekeeping_interval_s;     /* ENMS_HOUSEKEEPING_INTERVAL_S */
    int redispatch_grace_s;          /* ENMS_REDISPATCH_GRACE_S */
    int sse_max_streams;             /* ENMS_SSE_MAX_STREAMS */
    /* Monitoring (issue 5): schedules in seconds, 0 turns one off. */
    int eval_interval_s;        /* ENMS_EVAL_INTERVAL_S: evaluate active models */
    int score_interval_s;       /* ENMS_SCORE_INTERVAL_S: anomaly scoring of new readings */
    int retrain_baseline_s;     /* ENMS_RETRAIN_BASELINE_S: scheduled baseline retrain */
    int retrain_anomaly_s;      /* ENMS_RETRAIN_ANOMALY_S */
    int retrain_forecast_s;     /* ENMS_RETRAIN_FORECAST_S */
    int auto_retrain;           /* ENMS_AUTO_RETRAIN: 1 retrains on drift */
    int drift_cooldown_s;       /* ENMS_DRIFT_COOLDOWN_S: at most one auto retrain per model */
    int drift_recent_days;      /* ENMS_DRIFT_RECENT_DAYS: recent window of drift checks */
    double drift_psi;           /* ENMS_DRIFT_PSI: population stability index limit */
    double drift_ks_alpha;      /* ENMS_DRIFT_KS_ALPHA: KS significance (effective n) */
    double drift_perf;          /* ENMS_DRIFT_PERF: relative degradation limit */
    char activation_policy[16]; /* ENMS_ACTIVATION_POLICY: better, always or manual */
};

/* One documented variable, as printed by `--help` and listed in the README. */
struct config_var {
    const char *name;
    const char *default_text;
    const char *meaning;
};

extern const struct config_var config_vars[];
extern const size_t config_var_count;

/* Fills cfg from the environment. Returns 0, or ENMS_EINVAL with a sentence
 * naming the bad variable in err. cfg is fully initialised in both cases. */
int config_load(struct enms_config *cfg, char *err, size_t errlen);

/* Same, with a getenv-like lookup, so tests can feed values without setenv. */
int config_load_from(struct enms_config *cfg, const char *(*lookup)(const char *name, void *ctx),
                     void *ctx, char *err, size_t errlen);

/* Parses a decimal integer in [min, max]; whole string must be a number. */
int config_parse_int(const char *text, long min, long max, long *out);

/* Parses a finite decimal number in [min, max]; whole string must be a number. */
int config_parse_double(const char *text, double min, double max, double *out);

#endif
