/* routes_machines.c - GET /api/v1/machines: the machines for the
 * dashboard's dropdown, [{id, name, type, location, rated_power_kw}] ordered
 * by name, as the original system listed them.
 *
 * PostgreSQL builds the JSON itself, so the list costs one query and no
 * per-row work here. */
#include "http.h"
#include "routes.h"
#include "server.h"
#include "../common/pg.h"

int route_machines(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    char err[512];
    if (!http_method_is(conn, "GET"))
        return http_reply_error(conn, 405, "use GET");
    PGconn *pg = api_pg(conn, err, sizeof err);
    if (!pg)
        return http_reply_error(conn, 503, "postgresql unavailable: %s", err);
    PGresult *res = pg_exec(pg, PGRES_TUPLES_OK,
                            "SELECT COALESCE(json_agg(json_build_object('id', id, 'name', name, "
                            "'type', type, 'location', location, 'rated_power_kw', "
                            "rated_power_kw) ORDER BY name), '[]'::json)::text FROM machines",
                            0, NULL, err, sizeof err);
    if (!res) {
        if (PQstatus(pg) != CONNECTION_OK)
            return http_reply_error(conn, 503, "postgresql unavailable: %s", err);
        return http_reply_error(conn, 500, "database error: %s", err);
    }
    int status = http_reply_json(conn, 200, PQgetvalue(res, 0, 0));
    PQclear(res);
    return status;
}
