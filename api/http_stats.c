/* http_stats.c - request counters of the API (see http_stats.h): a count
 * per (route, status) and a latency histogram per route, updated with
 * relaxed atomics from civetweb's threads and rendered for /metrics. The
 * route table itself lives in routes.c; the HTTP handler in
 * routes_prometheus.c. */
#include "http_stats.h"
#include "routes.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Status codes 0..999 each get a slot: civetweb reports 1-999, and a
 * direct index keeps record() free of searches. */
#define STATUS_SLOTS 1000

/* Upper bounds of the latency buckets in seconds: from a cached read
 * (milliseconds) to a slow evaluation (seconds); +Inf is implied. */
static const double BUCKETS[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define BUCKET_COUNT (sizeof BUCKETS / sizeof BUCKETS[0])

struct http_route_stats {
    atomic_uint_least64_t status[STATUS_SLOTS];
    atomic_uint_least64_t bucket[BUCKET_COUNT + 1]; /* last: above every bound */
    atomic_uint_least64_t count;
    atomic_uint_least64_t sum_us; /* total duration in microseconds */
};

struct http_stats {
    int routes;                     /* routes_count(); slot [routes] is "other" */
    struct http_route_stats *route; /* routes + 1 slots */
};

struct http_stats *http_stats_create(void)
{
    struct http_stats *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->routes = routes_count();
    /* calloc's zero bytes are a valid zero for these lock-free atomics. */
    s->route = calloc((size_t)s->routes + 1, sizeof *s->route);
    if (!s->route) {
        free(s);
        return NULL;
    }
    return s;
}

void http_stats_free(struct http_stats *stats)
{
    if (!stats)
        return;
    free(stats->route);
    free(stats);
}

void http_stats_record(struct http_stats *stats, int route, int status, double seconds)
{
    if (!stats)
        return;
    struct http_route_stats *r =
        &stats->route[route >= 0 && route < stats->routes ? route : stats->routes];
    size_t b = 0;
    if (!(seconds >= 0)) /* also NaN */
        seconds = 0;
    while (b < BUCKET_COUNT && seconds > BUCKETS[b])
        b++;
    atomic_fetch_add_explicit(&r->status[status > 0 && status < STATUS_SLOTS ? status : 0], 1,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&r->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->sum_us, (uint_least64_t)(seconds * 1e6 + 0.5),
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&r->count, 1, memory_order_relaxed);
}

/* A growing text buffer; on allocation failure it frees itself and every
 * later append is a no-op, so the caller checks once at the end. */
struct text {
    char *buf;
    size_t len, cap;
    int failed;
};

static void text_printf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_printf(struct text *t, const char *fmt, ...)
{
    if (t->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            break;
        }
        if (t->buf && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap * 2 : 4096;
        while (cap < t->len + (size_t)n + 1)
            cap *= 2;
        char *grown = realloc(t->buf, cap);
        if (!grown) {
            t->failed = 1;
            break;
        }
        t->buf = grown;
        t->cap = cap;
    }
    free(t->buf);
    t->buf = NULL;
}

/* Escapes a label value as the Prometheus text format asks: backslash,
 * double quote and newline. Values are route templates and methods, short
 * by construction; longer ones are cut. */
static const char *label(const char *value, char *out, size_t outlen)
{
    size_t n = 0;
    for (const char *p = value; *p && n + 3 < outlen; p++) {
        if (*p == '\\' || *p == '"') {
            out[n++] = '\\';
            out[n++] = *p;
        } else if (*p == '\n') {
            out[n++] = '\\';
            out[n++] = 'n';
        } else {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
    return out;
}

static uint_least64_t load(const atomic_uint_least64_t *v)
{
    /* The render reads a live counter set: each value is exact, the set is
     * a near-instant snapshot, which is all Prometheus expects. */
    return atomic_load_explicit((atomic_uint_least64_t *)v, memory_order_relaxed);
}

char *http_stats_render(const struct http_stats *stats)
{
    struct text t = {0};
    char route[512], method[64];

    if (!stats)
        return strdup("");
    text_printf(&t, "# HELP enms_http_requests_total HTTP requests answered by the API, by "
                    "route template, method and status (route \"other\": static files and "
                    "unknown paths).\n"
                    "# TYPE enms_http_requests_total counter\n");
    for (int i = 0; i <= stats->routes; i++) {
        const struct http_route_stats *r = &stats->route[i];
        label(i < stats->routes ? routes_path(i) : "other", route, sizeof route);
        label(i < stats->routes ? routes_method(i) : "other", method, sizeof method);
        for (int s = 0; s < STATUS_SLOTS; s++) {
            uint_least64_t n = load(&r->status[s]);
            if (n)
                text_printf(&t,
                            "enms_http_requests_total{route=\"%s\",method=\"%s\",status=\"%d\"} "
                            "%llu\n",
                            route, method, s, (unsigned long long)n);
        }
    }
    text_printf(&t, "# HELP enms_http_request_duration_seconds Time from reading a request's "
                    "headers to its last byte written.\n"
                    "# TYPE enms_http_request_duration_seconds histogram\n");
    for (int i = 0; i <= stats->routes; i++) {
        const struct http_route_stats *r = &stats->route[i];
        uint_least64_t count = load(&r->count);
        if (!count)
            continue;
        label(i < stats->routes ? routes_path(i) : "other", route, sizeof route);
        label(i < stats->routes ? routes_method(i) : "other", method, sizeof method);
        /* Buckets are stored one per observation and summed here, so the
         * cumulative counts of a render never decrease between buckets;
         * _count is the +Inf bucket, keeping the two equal by definition. */
        uint_least64_t cum = 0;
        for (size_t b = 0; b <= BUCKET_COUNT; b++) {
            cum += load(&r->bucket[b]);
            if (b < BUCKET_COUNT)
                text_printf(&t,
                            "enms_http_request_duration_seconds_bucket{route=\"%s\",method=\"%s\","
                            "le=\"%g\"} %llu\n",
                            route, method, BUCKETS[b], (unsigned long long)cum);
        }
        text_printf(&t,
                    "enms_http_request_duration_seconds_bucket{route=\"%s\",method=\"%s\","
                    "le=\"+Inf\"} %llu\n"
                    "enms_http_request_duration_seconds_sum{route=\"%s\",method=\"%s\"} %.6f\n"
                    "enms_http_request_duration_seconds_count{route=\"%s\",method=\"%s\"} %llu\n",
                    route, method, (unsigned long long)cum, route, method,
                    (double)load(&r->sum_us) / 1e6, route, method, (unsigned long long)cum);
    }
    if (t.failed)
        return NULL;
    return t.buf ? t.buf : strdup("");
}
