/* server.c - per-thread connection state of the API (see server.h). */
#include "server.h"
#include "../common/error.h"
#include "../common/pg.h"

#include <stdlib.h>

struct api_thread *api_thread_create(void)
{
    return calloc(1, sizeof(struct api_thread));
}

void api_thread_free(struct api_thread *t)
{
    if (!t)
        return;
    if (t->pg)
        PQfinish(t->pg);
    if (t->redis)
        redisFree(t->redis);
    free(t);
}

const struct api_server *api_server_of(struct mg_connection *conn)
{
    return mg_get_user_data(mg_get_context(conn));
}

struct api_thread *api_thread_of(struct mg_connection *conn)
{
    return mg_get_thread_pointer(conn);
}

PGconn *api_pg(struct mg_connection *conn, char *err, size_t errlen)
{
    const struct api_server *srv = api_server_of(conn);
    struct api_thread *t = api_thread_of(conn);
    if (!t) {
        enms_fail(err, errlen, ENMS_EINTERNAL, "no thread state");
        return NULL;
    }
    if (pg_ensure(&t->pg, srv->cfg->pg_dsn, srv->cfg->connect_timeout_ms, "enms-api", err,
                  errlen) != ENMS_OK)
        return NULL;
    return t->pg;
}

redisContext *api_redis(struct mg_connection *conn, char *err, size_t errlen)
{
    const struct api_server *srv = api_server_of(conn);
    struct api_thread *t = api_thread_of(conn);
    if (!t) {
        enms_fail(err, errlen, ENMS_EINTERNAL, "no thread state");
        return NULL;
    }
    if (redis_ensure(&t->redis, &srv->redis, srv->cfg->connect_timeout_ms, srv->cfg->io_timeout_ms,
                     err, errlen) != ENMS_OK)
        return NULL;
    return t->redis;
}
