/* routes_prometheus.c - GET /metrics in the Prometheus text format (0.0.4).
 *
 * Three sources, each rendered into a buffer of its own and appended only
 * when it succeeded whole, so a scrape never shows half a family:
 * - PostgreSQL (the record): jobs by status and model type, the dispatch
 *   latency and job duration histograms, the oldest pending job's age and
 *   the last start; read in one REPEATABLE READ READ ONLY transaction so the
 *   families agree with each other.
 * - Redis (live state): queue depths, processing lists, dead-letter size,
 *   workers alive and their heartbeat age, and the workers' own job counters
 *   (worker/worker_stats.h).
 * - the API's own HTTP counters (http_stats.h).
 * A source that is down costs its families, not the scrape: the answer is
 * still 200, with enms_scrape_error{source} saying what is missing.
 * docs/metrics.md is the reference of every family. */
#include "http.h"
#include "routes.h"
#include "server.h"
#include "../common/error.h"
#include "../common/log.h"
#include "../common/pg.h"
#include "../common/queue.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROM_BUF_MAX   (8u << 20) /* a scrape bigger than this is a bug, not a load */
#define PROM_KEYS_MAX  1000       /* keys of one kind read per scrape */
#define PROM_MODEL_MAX 16         /* model types: the schema's CHECK allows 4 */
#define PROM_NAME_MAX  128        /* longest label value taken from Redis or PostgreSQL */

/* Job states and model types always exported, zero or not, so a series does
 * not vanish (and come back as a "new" series) when its count passes 0. */
static const char *const JOB_STATUSES[] = {"pending", "running", "completed", "failed",
                                           "cancelled"};
#define NSTATUSES (sizeof JOB_STATUSES / sizeof JOB_STATUSES[0])
static const char *const MODEL_TYPES[] = {"baseline", "anomaly", "forecast_arima", "probe"};
#define NMODELS_KNOWN (sizeof MODEL_TYPES / sizeof MODEL_TYPES[0])
/* Job durations are recorded for these final states (schema: training_duration_seconds). */
static const char *const DONE_STATUSES[] = {"completed", "failed", "cancelled"};
#define NDONE (sizeof DONE_STATUSES / sizeof DONE_STATUSES[0])
/* worker/worker_stats.h outcomes; anything else in a stats hash is skipped. */
static const char *const OUTCOMES[] = {"started",   "completed", "failed",
                                       "cancelled", "released",  "lost"};
#define NOUTCOMES (sizeof OUTCOMES / sizeof OUTCOMES[0])

/* Bucket bounds in seconds. Dispatch is normally sub-second; training runs
 * from seconds (probes, baseline) to an hour (ARIMA on a year of data). */
static const double DISPATCH_BUCKETS[] = {0.05, 0.1, 0.25, 0.5, 1,   2.5, 5,
                                          10,   30,  60,   300, 900, 3600};
#define NDISPATCH (sizeof DISPATCH_BUCKETS / sizeof DISPATCH_BUCKETS[0])
static const double DURATION_BUCKETS[] = {0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200};
#define NDURATION    (sizeof DURATION_BUCKETS / sizeof DURATION_BUCKETS[0])
#define NBUCKETS_MAX 16

/* A growing text buffer. oom latches: once set, every append is a no-op and
 * the caller reports one failure at the end. */
struct prom_buf {
    char *data; /* malloc'd, NUL-terminated while len > 0; freed by buf_free */
    size_t len, cap;
    int oom;
};

static void buf_free(struct prom_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

static int buf_reserve(struct prom_buf *b, size_t extra)
{
    if (b->oom)
        return ENMS_ENOMEM;
    if (b->len + extra + 1 <= b->cap)
        return ENMS_OK;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = cap <= PROM_BUF_MAX ? realloc(b->data, cap) : NULL;
    if (!p) {
        b->oom = 1;
        return ENMS_ENOMEM;
    }
    b->data = p;
    b->cap = cap;
    return ENMS_OK;
}

static void buf_append(struct prom_buf *b, const char *text, size_t n)
{
    if (n == 0 || buf_reserve(b, n) != ENMS_OK)
        return;
    memcpy(b->data + b->len, text, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void buf_puts(struct prom_buf *b, const char *text)
{
    buf_append(b, text, strlen(text));
}

static void buf_printf(struct prom_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void buf_printf(struct prom_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0 || buf_reserve(b, (size_t)n) != ENMS_OK)
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Appends a label value escaped as the text format wants (\\, \", \n). */
static void buf_label(struct prom_buf *b, const char *value)
{
    for (const char *p = value; *p; p++) {
        if (*p == '\\')
            buf_puts(b, "\\\\");
        else if (*p == '"')
            buf_puts(b, "\\\"");
        else if (*p == '\n')
            buf_puts(b, "\\n");
        else
            buf_append(b, p, 1);
    }
}

/* One label pair name="value", with a leading comma unless first. */
static void buf_pair(struct prom_buf *b, int first, const char *name, const char *value)
{
    buf_printf(b, "%s%s=\"", first ? "" : ",", name);
    buf_label(b, value);
    buf_puts(b, "\"");
}

static void family(struct prom_buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A sample value: integers print exactly, others in the shortest of 15 or
 * 17 significant digits that reads back as the same double. */
static void buf_value(struct prom_buf *b, double v)
{
    char text[40];
    if (isnan(v)) {
        buf_puts(b, " NaN\n");
        return;
    }
    if (v == floor(v) && fabs(v) < 1e15) {
        buf_printf(b, " %.0f\n", v);
        return;
    }
    snprintf(text, sizeof text, "%.15g", v);
    if (strtod(text, NULL) != v)
        snprintf(text, sizeof text, "%.17g", v);
    buf_printf(b, " %s\n", text);
}

/* Bucket bound as a label ("0.05", "10"), the way Prometheus clients print it. */
static void le_text(double le, char *out, size_t outlen)
{
    snprintf(out, outlen, "%.15g", le);
}

/* "{0.05,0.1,...}", a PostgreSQL array literal bound as a parameter. */
static void bucket_array(const double *b, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    out[o++] = '{';
    for (size_t i = 0; i < n && o + 32 < outlen; i++)
        o += (size_t)snprintf(out + o, outlen - o, "%s%.15g", i ? "," : "", b[i]);
    snprintf(out + o, outlen - o, "}");
}

/* ---------------------------------------------------------------- PostgreSQL */

struct pg_hist {
    double le_count[NBUCKETS_MAX];
    double count, sum;
};

struct pg_data {
    char models[PROM_MODEL_MAX][32]; /* MODEL_TYPES first, then any other the rows hold */
    size_t nmodels;
    double jobs[PROM_MODEL_MAX][NSTATUSES];
    struct pg_hist dispatch[PROM_MODEL_MAX];
    struct pg_hist duration[PROM_MODEL_MAX][NDONE];
    double oldest_pending_age; /* 0 when nothing is pending */
    double last_started;       /* epoch s; 0 when no job ever started */
};

static int index_of(const char *const *list, size_t n, const char *value)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i], value) == 0)
            return (int)i;
    }
    return -1;
}

static int model_index(struct pg_data *d, const char *model, int add)
{
    for (size_t i = 0; i < d->nmodels; i++) {
        if (strcmp(d->models[i], model) == 0)
            return (int)i;
    }
    if (!add || d->nmodels == PROM_MODEL_MAX || strlen(model) >= sizeof d->models[0])
        return -1;
    snprintf(d->models[d->nmodels], sizeof d->models[0], "%s", model);
    return (int)d->nmodels++;
}

static const char SQL_JOBS[] = "SELECT training_status, model_type, count(*) "
                               "FROM model_training_history GROUP BY 1, 2";

/* Dispatch latency: enqueue (created_at) to the start of the latest attempt
 * (training_start), for every job that started. Each row is in every bucket
 * group, so sum() and count(*) per group are the model type's totals. */
static const char SQL_DISPATCH[] =
    "SELECT j.model_type, b.i, count(*) FILTER (WHERE j.d <= b.le), count(*), sum(j.d) "
    "FROM (SELECT model_type, "
    "GREATEST(0, EXTRACT(EPOCH FROM training_start - created_at))::float8 AS d "
    "FROM model_training_history WHERE training_start IS NOT NULL) j "
    "CROSS JOIN unnest($1::float8[]) WITH ORDINALITY AS b(le, i) "
    "GROUP BY 1, 2";

/* Job duration: training_duration_seconds, written with training_end when
 * an attempt that started ends completed, failed or cancelled. */
static const char SQL_DURATION[] =
    "SELECT j.model_type, j.training_status, b.i, count(*) FILTER (WHERE j.d <= b.le), "
    "count(*), sum(j.d) "
    "FROM (SELECT model_type, training_status, training_duration_seconds AS d "
    "FROM model_training_history WHERE training_duration_seconds IS NOT NULL "
    "AND training_status IN ('completed', 'failed', 'cancelled')) j "
    "CROSS JOIN unnest($1::float8[]) WITH ORDINALITY AS b(le, i) "
    "GROUP BY 1, 2, 3";

static const char SQL_TIMES[] = "SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(updated_at) "
                                "FILTER (WHERE training_status = 'pending')), 0)::float8, "
                                "COALESCE(EXTRACT(EPOCH FROM max(training_start)), 0)::float8 "
                                "FROM model_training_history";

/* Adds one histogram row (bucket index 1-based, bucket count, total count,
 * sum) to h. */
static void hist_row(struct pg_hist *h, const PGresult *res, int row, int col, size_t nbuckets)
{
    long i = atol(PQgetvalue(res, row, col));
    if (i >= 1 && (size_t)i <= nbuckets)
        h->le_count[i - 1] = atof(PQgetvalue(res, row, col + 1));
    h->count = atof(PQgetvalue(res, row, col + 2));
    h->sum = PQgetisnull(res, row, col + 3) ? 0 : atof(PQgetvalue(res, row, col + 3));
}

static int pg_read(PGconn *pg, struct pg_data *d, char *err, size_t errlen)
{
    char dispatch_arr[512], duration_arr[512];
    PGresult *res = NULL; /* PQclear */
    int rc;

    bucket_array(DISPATCH_BUCKETS, NDISPATCH, dispatch_arr, sizeof dispatch_arr);
    bucket_array(DURATION_BUCKETS, NDURATION, duration_arr, sizeof duration_arr);
    if ((rc = pg_command(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err, errlen)) !=
        ENMS_OK)
        return rc;

    if (!(res = pg_exec(pg, PGRES_TUPLES_OK, SQL_JOBS, 0, NULL, err, errlen)))
        goto fail;
    for (int r = 0; r < PQntuples(res); r++) {
        int s = index_of(JOB_STATUSES, NSTATUSES, PQgetvalue(res, r, 0));
        int m = model_index(d, PQgetvalue(res, r, 1), 1);
        if (s >= 0 && m >= 0)
            d->jobs[m][s] = atof(PQgetvalue(res, r, 2));
    }
    PQclear(res);

    const char *p1[] = {dispatch_arr};
    if (!(res = pg_exec(pg, PGRES_TUPLES_OK, SQL_DISPATCH, 1, p1, err, errlen)))
        goto fail;
    for (int r = 0; r < PQntuples(res); r++) {
        int m = model_index(d, PQgetvalue(res, r, 0), 0);
        if (m >= 0)
            hist_row(&d->dispatch[m], res, r, 1, NDISPATCH);
    }
    PQclear(res);

    const char *p2[] = {duration_arr};
    if (!(res = pg_exec(pg, PGRES_TUPLES_OK, SQL_DURATION, 1, p2, err, errlen)))
        goto fail;
    for (int r = 0; r < PQntuples(res); r++) {
        int m = model_index(d, PQgetvalue(res, r, 0), 0);
        int s = index_of(DONE_STATUSES, NDONE, PQgetvalue(res, r, 1));
        if (m >= 0 && s >= 0)
            hist_row(&d->duration[m][s], res, r, 2, NDURATION);
    }
    PQclear(res);

    if (!(res = pg_exec(pg, PGRES_TUPLES_OK, SQL_TIMES, 0, NULL, err, errlen)) ||
        PQntuples(res) != 1)
        goto fail;
    d->oldest_pending_age = atof(PQgetvalue(res, 0, 0));
    d->last_started = atof(PQgetvalue(res, 0, 1));
    PQclear(res);
    return pg_command(pg, "COMMIT", err, errlen);
fail:
    if (res)
        PQclear(res);
    if (PQstatus(pg) == CONNECTION_OK)
        PQclear(PQexec(pg, "ROLLBACK"));
    return ENMS_EDB;
}

static void render_hist(struct prom_buf *b, const char *name, const char *model, const char *status,
                        const struct pg_hist *h, const double *bounds, size_t n)
{
    char le[32];
    for (size_t i = 0; i <= n; i++) {
        buf_printf(b, "%s_bucket{", name);
        buf_pair(b, 1, "model_type", model);
        if (status)
            buf_pair(b, 0, "status", status);
        if (i < n)
            le_text(bounds[i], le, sizeof le);
        buf_pair(b, 0, "le", i < n ? le : "+Inf");
        buf_puts(b, "}");
        buf_value(b, i < n ? h->le_count[i] : h->count);
    }
    buf_printf(b, "%s_sum{", name);
    buf_pair(b, 1, "model_type", model);
    if (status)
        buf_pair(b, 0, "status", status);
    buf_puts(b, "}");
    buf_value(b, h->sum);
    buf_printf(b, "%s_count{", name);
    buf_pair(b, 1, "model_type", model);
    if (status)
        buf_pair(b, 0, "status", status);
    buf_puts(b, "}");
    buf_value(b, h->count);
}

static void pg_render(struct prom_buf *b, const struct pg_data *d)
{
    family(b, "enms_jobs", "gauge",
           "Jobs in model_training_history by status and model type (PostgreSQL).");
    for (size_t m = 0; m < d->nmodels; m++) {
        for (size_t s = 0; s < NSTATUSES; s++) {
            buf_puts(b, "enms_jobs{");
            buf_pair(b, 1, "status", JOB_STATUSES[s]);
            buf_pair(b, 0, "model_type", d->models[m]);
            buf_puts(b, "}");
            buf_value(b, d->jobs[m][s]);
        }
    }
    family(b, "enms_job_dispatch_latency_seconds", "histogram",
           "Enqueue to start of the latest attempt, over every job that started (PostgreSQL).");
    for (size_t m = 0; m < d->nmodels; m++)
        render_hist(b, "enms_job_dispatch_latency_seconds", d->models[m], NULL, &d->dispatch[m],
                    DISPATCH_BUCKETS, NDISPATCH);
    family(b, "enms_job_duration_seconds", "histogram",
           "Start to end of the last attempt of finished jobs, by final status (PostgreSQL).");
    for (size_t m = 0; m < d->nmodels; m++) {
        for (size_t s = 0; s < NDONE; s++)
            render_hist(b, "enms_job_duration_seconds", d->models[m], DONE_STATUSES[s],
                        &d->duration[m][s], DURATION_BUCKETS, NDURATION);
    }
    family(b, "enms_jobs_oldest_pending_age_seconds", "gauge",
           "Seconds since the longest-waiting pending job last changed state; 0 when none.");
    buf_puts(b, "enms_jobs_oldest_pending_age_seconds");
    buf_value(b, d->oldest_pending_age);
    family(b, "enms_jobs_last_started_timestamp_seconds", "gauge",
           "Unix time of the latest job start; 0 when no job ever started.");
    buf_puts(b, "enms_jobs_last_started_timestamp_seconds");
    buf_value(b, d->last_started);
}

/* Renders the PostgreSQL families into b; on failure b may hold a part and
 * the caller drops it. A connection that went stale (server restart) is
 * retried once on a fresh one. */
static int pg_section(struct mg_connection *conn, struct prom_buf *b, char *err, size_t errlen)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        struct pg_data *d = calloc(1, sizeof *d); /* freed below */
        if (!d)
            return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        for (size_t i = 0; i < NMODELS_KNOWN; i++)
            model_index(d, MODEL_TYPES[i], 1);
        PGconn *pg = api_pg(conn, err, errlen);
        int rc = pg ? pg_read(pg, d, err, errlen) : ENMS_EDB;
        if (rc == ENMS_OK)
            pg_render(b, d);
        free(d);
        if (rc == ENMS_OK)
            return b->oom ? enms_fail(err, errlen, ENMS_ENOMEM, "out of memory") : ENMS_OK;
        if (!pg || PQstatus(pg) == CONNECTION_OK)
            return rc;
    }
    return ENMS_EDB;
}

/* --------------------------------------------------------------------- Redis */

/* Owned strings (keys or names); freed by names_free. */
struct names {
    char **v;
    size_t n;
};

static void names_free(struct names *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int names_add(struct names *s, const char *text, size_t len)
{
    if (s->n == PROM_KEYS_MAX)
        return ENMS_OK; /* bounded: the rest is not exported */
    if (s->n % 64 == 0) {
        char **v = realloc(s->v, (s->n + 64) * sizeof *v);
        if (!v)
            return ENMS_ENOMEM;
        s->v = v;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return ENMS_ENOMEM;
    memcpy(copy, text, len);
    copy[len] = '\0';
    s->v[s->n++] = copy;
    return ENMS_OK;
}

static int redis_fail(redisContext *r, redisReply *reply, const char *what, char *err,
                      size_t errlen)
{
    int rc = enms_fail(err, errlen, ENMS_EREDIS, "redis: %s: %s", what,
                       reply && reply->type == REDIS_REPLY_ERROR ? reply->str : r->errstr);
    if (reply)
        freeReplyObject(reply);
    return rc;
}

/* Collects the keys "<prefix>:<kind>:*" (SCAN, never KEYS) into out. */
static int scan_kind(redisContext *r, const char *prefix, const char *kind, struct names *out,
                     char *err, size_t errlen)
{
    char pattern[QUEUE_KEY_MAX * 2 + 16], cursor[32] = "0";
    size_t o = 0;
    /* The prefix is literal ({enms} by default): escape SCAN's glob characters. */
    for (const char *p = prefix; *p && o + 3 < QUEUE_KEY_MAX * 2; p++) {
        if (strchr("*?[]\\", *p))
            pattern[o++] = '\\';
        pattern[o++] = *p;
    }
    snprintf(pattern + o, sizeof pattern - o, ":%s:*", kind);
    do {
        redisReply *reply = redisCommand(r, "SCAN %s MATCH %s COUNT 500", cursor, pattern);
        if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
            reply->element[0]->type != REDIS_REPLY_STRING ||
            reply->element[1]->type != REDIS_REPLY_ARRAY)
            return redis_fail(r, reply, "SCAN", err, errlen);
        snprintf(cursor, sizeof cursor, "%s", reply->element[0]->str);
        for (size_t i = 0; i < reply->element[1]->elements; i++) {
            const redisReply *k = reply->element[1]->element[i];
            if (k->type == REDIS_REPLY_STRING && names_add(out, k->str, k->len) != ENMS_OK) {
                freeReplyObject(reply);
                return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
            }
        }
        freeReplyObject(reply);
    } while (strcmp(cursor, "0") != 0 && out->n < PROM_KEYS_MAX);
    return ENMS_OK;
}

static int llen(redisContext *r, const char *key, long long *out, char *err, size_t errlen)
{
    redisReply *reply = redisCommand(r, "LLEN %s", key);
    if (!reply || reply->type != REDIS_REPLY_INTEGER)
        return redis_fail(r, reply, "LLEN", err, errlen);
    *out = reply->integer;
    freeReplyObject(reply);
    return ENMS_OK;
}

/* A label value read from Redis is exported only when short and printable:
 * the code writes worker ids and hosts of [A-Za-z0-9._-], so anything else
 * was put there by hand and must not blow up the series count. */
static int sane_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > PROM_NAME_MAX)
        return 0;
    for (; *s; s++) {
        if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
            return 0;
    }
    return 1;
}

/* Per-host tallies: workers alive and busy now, plus hosts known only from
 * their counters (alive 0), so enms_workers_alive{host} drops to 0 instead of
 * vanishing when a host's last worker dies. */
struct host_tally {
    char host[PROM_NAME_MAX + 1];
    int alive, busy;
};

struct hosts {
    struct host_tally *v;
    size_t n;
};

static struct host_tally *host_find(struct hosts *h, const char *host)
{
    for (size_t i = 0; i < h->n; i++) {
        if (strcmp(h->v[i].host, host) == 0)
            return &h->v[i];
    }
    if (h->n == PROM_KEYS_MAX || !sane_name(host))
        return NULL;
    if (h->n % 32 == 0) {
        struct host_tally *v = realloc(h->v, (h->n + 32) * sizeof *v);
        if (!v)
            return NULL;
        h->v = v;
    }
    struct host_tally *t = &h->v[h->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->host, sizeof t->host, "%s", host);
    return t;
}

/* Queue depths (always "default"), processing lists, dead-letter size. */
static int redis_lists(redisContext *r, const char *prefix, struct prom_buf *b, char *err,
                       size_t errlen)
{
    char key[QUEUE_KEY_MAX];
    struct names keys = {0};
    long long n = 0;
    int rc;
    size_t skip;

    family(b, "enms_queue_depth", "gauge", "Job ids waiting in each queue list (Redis LLEN).");
    if (queue_key(key, sizeof key, prefix, "queue", QUEUE_DEFAULT) != ENMS_OK)
        return enms_fail(err, errlen, ENMS_ETOOBIG, "prefix too long");
    if ((rc = llen(r, key, &n, err, errlen)) != ENMS_OK)
        return rc;
    buf_puts(b, "enms_queue_depth{queue=\"default\"}");
    buf_value(b, (double)n);
    if ((rc = scan_kind(r, prefix, "queue", &keys, err, errlen)) != ENMS_OK)
        goto done;
    skip = strlen(prefix) + strlen(":queue:");
    for (size_t i = 0; i < keys.n; i++) {
        const char *name = keys.v[i] + skip;
        if (strcmp(name, QUEUE_DEFAULT) == 0 || !sane_name(name))
            continue;
        if ((rc = llen(r, keys.v[i], &n, err, errlen)) != ENMS_OK)
            goto done;
        buf_puts(b, "enms_queue_depth{");
        buf_pair(b, 1, "queue", name);
        buf_puts(b, "}");
        buf_value(b, (double)n);
    }
    names_free(&keys);

    family(b, "enms_worker_processing_jobs", "gauge",
           "Job ids in each worker's processing list (held, normally 0 or 1).");
    if ((rc = scan_kind(r, prefix, "processing", &keys, err, errlen)) != ENMS_OK)
        goto done;
    skip = strlen(prefix) + strlen(":processing:");
    for (size_t i = 0; i < keys.n; i++) {
        const char *name = keys.v[i] + skip;
        if (!sane_name(name))
            continue;
        if ((rc = llen(r, keys.v[i], &n, err, errlen)) != ENMS_OK)
            goto done;
        buf_puts(b, "enms_worker_processing_jobs{");
        buf_pair(b, 1, "worker", name);
        buf_puts(b, "}");
        buf_value(b, (double)n);
    }

    family(b, "enms_dead_letter_jobs", "gauge",
           "Job ids in the dead-letter list (failed after ENMS_MAX_ATTEMPTS lost attempts).");
    if (queue_key(key, sizeof key, prefix, "dead", NULL) != ENMS_OK) {
        rc = enms_fail(err, errlen, ENMS_ETOOBIG, "prefix too long");
        goto done;
    }
    if ((rc = llen(r, key, &n, err, errlen)) != ENMS_OK)
        goto done;
    buf_puts(b, "enms_dead_letter_jobs");
    buf_value(b, (double)n);
    rc = ENMS_OK;
done:
    names_free(&keys);
    return rc;
}

/* The workers' counters: one hash per host, fields "<model_type>|<outcome>". */
static int redis_counters(redisContext *r, const char *prefix, struct hosts *hosts,
                          struct prom_buf *b, char *err, size_t errlen)
{
    struct names keys = {0};
    int rc = scan_kind(r, prefix, "stats", &keys, err, errlen);
    size_t skip = strlen(prefix) + strlen(":stats:");
    if (rc != ENMS_OK)
        goto done;
    family(b, "enms_worker_jobs_total", "counter",
           "Job attempts the workers of a host started and ended, by model type and outcome.");
    for (size_t i = 0; i < keys.n; i++) {
        const char *host = keys.v[i] + skip;
        if (!sane_name(host) || !host_find(hosts, host))
            continue;
        redisReply *h = redisCommand(r, "HGETALL %s", keys.v[i]);
        if (!h || h->type != REDIS_REPLY_ARRAY) {
            rc = redis_fail(r, h, "HGETALL", err, errlen);
            goto done;
        }
        for (size_t f = 0; f + 1 < h->elements; f += 2) {
            const redisReply *k = h->element[f], *v = h->element[f + 1];
            char model[32];
            const char *bar;
            if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
                !(bar = strchr(k->str, '|')) || (size_t)(bar - k->str) >= sizeof model ||
                bar == k->str || index_of(OUTCOMES, NOUTCOMES, bar + 1) < 0)
                continue;
            memcpy(model, k->str, (size_t)(bar - k->str));
            model[bar - k->str] = '\0';
            if (strspn(model, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(model))
                continue;
            buf_puts(b, "enms_worker_jobs_total{");
            buf_pair(b, 1, "host", host);
            buf_pair(b, 0, "model_type", model);
            buf_pair(b, 0, "outcome", bar + 1);
            buf_puts(b, "}");
            buf_value(b, atof(v->str));
        }
        freeReplyObject(h);
    }
    rc = ENMS_OK;
done:
    names_free(&keys);
    return rc;
}

/* Registered workers: alive = their hash (heartbeat TTL) still exists. */
static int redis_workers(redisContext *r, const char *prefix, struct hosts *hosts,
                         struct prom_buf *b, char *err, size_t errlen)
{
    char key[QUEUE_KEY_MAX];
    struct names ids = {0};
    long long lost = 0;
    double now = (double)time(NULL);
    int rc = ENMS_OK;

    if (queue_key(key, sizeof key, prefix, "workers", NULL) != ENMS_OK)
        return enms_fail(err, errlen, ENMS_ETOOBIG, "prefix too long");
    redisReply *m = redisCommand(r, "SMEMBERS %s", key);
    if (!m || m->type != REDIS_REPLY_ARRAY)
        return redis_fail(r, m, "SMEMBERS", err, errlen);
    for (size_t i = 0; i < m->elements && rc == ENMS_OK; i++) {
        if (m->element[i]->type == REDIS_REPLY_STRING && sane_name(m->element[i]->str))
            rc = names_add(&ids, m->element[i]->str, m->element[i]->len);
    }
    freeReplyObject(m);
    if (rc != ENMS_OK) {
        rc = enms_fail(err, errlen, rc, "out of memory");
        goto done;
    }

    /* One round trip for all workers' hashes: pipelined HMGETs. Every key
     * is built before the first is sent, so a failure cannot leave replies
     * unread on a context that still looks healthy. */
    for (size_t i = 0; i < ids.n; i++) {
        if (queue_key(key, sizeof key, prefix, "worker", ids.v[i]) != ENMS_OK) {
            rc = enms_fail(err, errlen, ENMS_ETOOBIG, "worker key too long");
            goto done;
        }
    }
    for (size_t i = 0; i < ids.n; i++) {
        queue_key(key, sizeof key, prefix, "worker", ids.v[i]);
        if (redisAppendCommand(r, "HMGET %s host last_beat state", key) != REDIS_OK) {
            /* Out of memory inside hiredis: drop the context, whatever it queued. */
            r->err = REDIS_ERR_OOM;
            rc = enms_fail(err, errlen, ENMS_EREDIS, "redis: cannot queue HMGET");
            goto done;
        }
    }
    family(b, "enms_worker_heartbeat_age_seconds", "gauge",
           "Seconds since each live worker's last heartbeat (its hash in Redis).");
    for (size_t i = 0; i < ids.n; i++) {
        redisReply *h = NULL;
        if (redisGetReply(r, (void **)&h) != REDIS_OK || !h) {
            /* The context is unusable after a failed read; api_redis reconnects. */
            rc = redis_fail(r, h, "HMGET", err, errlen);
            goto done;
        }
        /* An error reply (a key of the wrong type, put there by hand) is
         * skipped, not returned: the replies after it must still be read. */
        if (h->type != REDIS_REPLY_ARRAY || h->elements != 3) {
            freeReplyObject(h);
            continue;
        }
        const redisReply *host = h->element[0], *beat = h->element[1], *state = h->element[2];
        if (host->type != REDIS_REPLY_STRING) {
            lost++; /* registered, but its hash expired: dead to everyone */
        } else {
            struct host_tally *t = host_find(hosts, host->str);
            if (t) {
                t->alive++;
                if (state->type == REDIS_REPLY_STRING && strcmp(state->str, "busy") == 0)
                    t->busy++;
                if (beat->type == REDIS_REPLY_STRING) {
                    double age = now - atof(beat->str);
                    buf_puts(b, "enms_worker_heartbeat_age_seconds{");
                    buf_pair(b, 1, "worker", ids.v[i]);
                    buf_pair(b, 0, "host", host->str);
                    buf_puts(b, "}");
                    buf_value(b, age < 0 ? 0 : age);
                }
            }
        }
        freeReplyObject(h);
    }
    family(b, "enms_workers_lost", "gauge",
           "Workers still registered whose heartbeat hash expired (housekeeping clears them).");
    buf_puts(b, "enms_workers_lost");
    buf_value(b, (double)lost);
    rc = ENMS_OK;
done:
    names_free(&ids);
    return rc;
}

static void render_hosts(struct prom_buf *b, const struct hosts *hosts)
{
    family(b, "enms_workers_alive", "gauge",
           "Workers with a live heartbeat, by host (0 for hosts known only from counters).");
    for (size_t i = 0; i < hosts->n; i++) {
        buf_puts(b, "enms_workers_alive{");
        buf_pair(b, 1, "host", hosts->v[i].host);
        buf_puts(b, "}");
        buf_value(b, hosts->v[i].alive);
    }
    family(b, "enms_workers_busy", "gauge", "Live workers holding a job, by host.");
    for (size_t i = 0; i < hosts->n; i++) {
        buf_puts(b, "enms_workers_busy{");
        buf_pair(b, 1, "host", hosts->v[i].host);
        buf_puts(b, "}");
        buf_value(b, hosts->v[i].busy);
    }
}

static int redis_read(redisContext *r, const char *prefix, struct prom_buf *b, char *err,
                      size_t errlen)
{
    struct hosts hosts = {0};
    int rc;
    if ((rc = redis_lists(r, prefix, b, err, errlen)) != ENMS_OK ||
        (rc = redis_workers(r, prefix, &hosts, b, err, errlen)) != ENMS_OK ||
        (rc = redis_counters(r, prefix, &hosts, b, err, errlen)) != ENMS_OK)
        goto done;
    render_hosts(b, &hosts);
    rc = b->oom ? enms_fail(err, errlen, ENMS_ENOMEM, "out of memory") : ENMS_OK;
done:
    free(hosts.v);
    return rc;
}

/* Renders the Redis families into b (a failed try's part is dropped); a
 * stale connection is retried once on a fresh one. */
static int redis_section(struct mg_connection *conn, struct prom_buf *b, char *err, size_t errlen)
{
    const char *prefix = api_server_of(conn)->cfg->redis_prefix;
    for (int attempt = 0; attempt < 2; attempt++) {
        redisContext *r = api_redis(conn, err, errlen);
        if (!r)
            return ENMS_EREDIS;
        int rc = redis_read(r, prefix, b, err, errlen);
        if (rc == ENMS_OK || r->err == 0)
            return rc;
        buf_free(b);
    }
    return ENMS_EREDIS;
}

/* ---------------------------------------------------------------- the route */

int route_prometheus(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    const struct api_server *srv = api_server_of(conn);
    struct prom_buf out = {0}, pg = {0}, redis = {0};
    char pg_err[256] = "", redis_err[256] = "";
    struct timespec t0, t1;
    char *http = NULL; /* http_stats_render: free() */
    int status;

    if (!http_method_is(conn, "GET") && !http_method_is(conn, "HEAD"))
        return http_reply_error(conn, 405, "use GET");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int pg_ok = pg_section(conn, &pg, pg_err, sizeof pg_err) == ENMS_OK;
    int redis_ok = redis_section(conn, &redis, redis_err, sizeof redis_err) == ENMS_OK;
    clock_gettime(CLOCK_MONOTONIC, &t1);

    family(&out, "enms_build_info", "gauge", "Always 1; labels name the API's version.");
    buf_puts(&out, "enms_build_info{version=\"1.0.0\",component=\"api\"} 1\n");
    family(&out, "enms_up", "gauge", "1 while the API answers scrapes.");
    buf_puts(&out, "enms_up 1\n");
    family(&out, "enms_scrape_error", "gauge",
           "1 when this scrape could not read the source; its families are missing.");
    buf_printf(&out, "enms_scrape_error{source=\"postgres\"} %d\n", !pg_ok);
    buf_printf(&out, "enms_scrape_error{source=\"redis\"} %d\n", !redis_ok);
    family(&out, "enms_scrape_duration_seconds", "gauge",
           "Time this scrape spent reading PostgreSQL and Redis.");
    buf_printf(&out, "enms_scrape_duration_seconds %.6f\n",
               (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    if (pg_ok)
        buf_append(&out, pg.data, pg.len);
    if (redis_ok)
        buf_append(&out, redis.data, redis.len);
    if (srv->http_stats && (http = http_stats_render(srv->http_stats)) != NULL)
        buf_append(&out, http, strlen(http));
    if (!pg_ok || !redis_ok) /* the scraper sees the flag, the operator reads why here */
        log_event(LOG_WARN, NULL, "metrics: partial scrape:%s%s%s%s",
                  pg_ok ? "" : " postgresql: ", pg_ok ? "" : pg_err,
                  redis_ok ? "" : " redis: ", redis_ok ? "" : redis_err);

    if (out.oom) {
        status = http_reply_error(conn, 500, "out of memory");
        goto done;
    }
    mg_printf(conn,
              "HTTP/1.1 200 OK\r\n"
              "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
              "Content-Length: %zu\r\n"
              "Cache-Control: no-store\r\n"
              "X-Content-Type-Options: nosniff\r\n"
              "\r\n",
              out.len);
    if (out.len && !http_method_is(conn, "HEAD"))
        mg_write(conn, out.data, out.len);
    status = 200;
done:
    free(http);
    buf_free(&out);
    buf_free(&pg);
    buf_free(&redis);
    return status;
}
