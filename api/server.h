/* server.h - what every API handler can reach: the configuration read at
 * start-up and the calling thread's own database and Redis connections.
 *
 * civetweb runs handlers on a pool of threads; each thread gets one
 * struct api_thread (made by api_thread_create in init_thread, freed in
 * exit_thread), so connections are never shared between threads. */
#ifndef ENMS_API_SERVER_H
#define ENMS_API_SERVER_H

#include <stdatomic.h>
#include <civetweb.h>
#include <hiredis.h>
#include <libpq-fe.h>

#include "../common/config.h"
#include "../common/redis.h"
#include "http_stats.h"

struct api_server {
    const struct enms_config *cfg; /* read-only after start-up */
    struct redis_url redis;        /* parsed cfg->redis_url */
    /* Set to 1 by main() before mg_stop(): mg_stop waits for every handler
     * to return, so long-lived handlers (event streams) poll this. */
    atomic_int stopping;
    atomic_int sse_streams;        /* event streams open now (capped by cfg->sse_max_streams) */
    struct http_stats *http_stats; /* request counters for /metrics (http_stats.h) */
};

struct api_thread {
    PGconn *pg;          /* NULL until first needed; reconnected when broken */
    redisContext *redis; /* same */
};

/* Returns a zeroed thread state the caller frees with api_thread_free(), or
 * NULL when out of memory. Connections are opened lazily, so a thread starts
 * even while PostgreSQL or Redis is down. */
struct api_thread *api_thread_create(void);
void api_thread_free(struct api_thread *t);

/* The server and thread state of the request being handled. */
const struct api_server *api_server_of(struct mg_connection *conn);
struct api_thread *api_thread_of(struct mg_connection *conn);

/* Returns the thread's PostgreSQL connection, connecting if needed, or NULL
 * with the reason in err. The connection stays owned by the thread. */
PGconn *api_pg(struct mg_connection *conn, char *err, size_t errlen);

/* Same for Redis. */
redisContext *api_redis(struct mg_connection *conn, char *err, size_t errlen);

#endif
