/* routes_health.c - liveness (/healthz) and readiness (/readyz).
 *
 * /healthz says the process serves requests and touches nothing else, so an
 * orchestrator never restarts the API because a database blinked.
 * /readyz says whether requests can succeed: PostgreSQL answers and is
 * migrated, and Redis answers. A 503 names the dependency that failed. */
#include "http.h"
#include "routes.h"
#include "server.h"
#include "../common/error.h"
#include "../common/pg.h"
#include "../common/redis.h"

#include <stdio.h>
#include <string.h>

int route_healthz(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    if (!http_method_is(conn, "GET") && !http_method_is(conn, "HEAD"))
        return http_reply_error(conn, 405, "use GET");
    return http_reply_json(conn, 200, "{\"status\":\"ok\"}");
}

/* Checks PostgreSQL once, and once more on a fresh connection when the
 * first attempt failed on a connection that had gone stale (server restart). */
static int check_postgres(struct mg_connection *conn, char *err, size_t errlen)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        PGconn *pg = api_pg(conn, err, errlen);
        if (!pg)
            return ENMS_EDB;
        PGresult *res = pg_exec(pg, PGRES_TUPLES_OK, "SELECT count(*) FROM schema_migrations", 0,
                                NULL, err, errlen);
        if (res) {
            PQclear(res);
            return ENMS_OK;
        }
        if (PQstatus(pg) == CONNECTION_OK) {
            /* The server answered, so the query itself failed. */
            snprintf(err, errlen, "schema not migrated (run enmsctl migrate)");
            return ENMS_EDB;
        }
    }
    return ENMS_EDB;
}

static int check_redis(struct mg_connection *conn, char *err, size_t errlen)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        redisContext *r = api_redis(conn, err, errlen);
        if (!r)
            return ENMS_EREDIS;
        if (redis_ping(r, err, errlen) == ENMS_OK)
            return ENMS_OK;
        if (r->err == 0)
            return ENMS_EREDIS;
    }
    return ENMS_EREDIS;
}

/* Connection helpers prefix their messages with the dependency's name,
 * which the reply already states. */
static const char *without_prefix(const char *msg, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(msg, prefix, n) == 0 ? msg + n : msg;
}

int route_readyz(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    char pg_err[256] = "";
    char redis_err[256] = "";
    if (!http_method_is(conn, "GET") && !http_method_is(conn, "HEAD"))
        return http_reply_error(conn, 405, "use GET");

    int pg_ok = check_postgres(conn, pg_err, sizeof pg_err) == ENMS_OK;
    int redis_ok = check_redis(conn, redis_err, sizeof redis_err) == ENMS_OK;
    if (pg_ok && redis_ok)
        return http_reply_json(conn, 200,
                               "{\"status\":\"ready\",\"postgresql\":\"ok\",\"redis\":\"ok\"}");
    if (!pg_ok && !redis_ok)
        return http_reply_error(conn, 503, "postgresql unavailable: %s; redis unavailable: %s",
                                without_prefix(pg_err, "postgresql: "),
                                without_prefix(redis_err, "redis: "));
    if (!pg_ok)
        return http_reply_error(conn, 503, "postgresql unavailable: %s",
                                without_prefix(pg_err, "postgresql: "));
    return http_reply_error(conn, 503, "redis unavailable: %s",
                            without_prefix(redis_err, "redis: "));
}
