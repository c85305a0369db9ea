/* http_stats.h - the API's own HTTP traffic, counted for /metrics: requests
 * by route, method and status, and a latency histogram by route.
 *
 * One struct http_stats per API process, owned by struct api_server and
 * created before civetweb starts. civetweb threads update it with atomics
 * only, so the request path takes no lock. Routes are the indexes of the
 * route table (routes_match() in routes.h); everything else (static files,
 * unknown paths) is counted under one "other" route, so the number of label
 * values stays bounded whatever clients send. */
#ifndef ENMS_API_HTTP_STATS_H
#define ENMS_API_HTTP_STATS_H

struct http_stats;

/* Returns a zeroed set of counters, or NULL when out of memory. The caller
 * frees it with http_stats_free() after mg_stop(). */
struct http_stats *http_stats_create(void);
void http_stats_free(struct http_stats *stats);

/* Counts one answered request. route: a routes_match() index, or -1 for
 * anything outside the route table; status: the HTTP status sent (1-999);
 * seconds: from the first byte read to the last byte written. */
void http_stats_record(struct http_stats *stats, int route, int status, double seconds);

/* Returns the Prometheus text exposition (HELP, TYPE and samples) of
 * enms_http_requests_total{route,method,status} and
 * enms_http_request_duration_seconds{route,method} as a string the caller
 * frees, or NULL when out of memory. */
char *http_stats_render(const struct http_stats *stats);

#endif
