/* model_versions.c - activation of a model version (model_versions.h). */
#include "model_versions.h"
#include "error.h"
#include "pg.h"

#include <stdio.h>

int model_version_activate(PGconn *conn, const char *version_id, char *prev, size_t prevlen,
                           char *version, size_t versionlen, char *err, size_t errlen)
{
    PGresult *res = NULL;
    char machine[40], type[32];
    const char *one[] = {version_id};

    prev[0] = '\0';
    if (version && versionlen)
        version[0] = '\0';
    res = pg_exec(conn, PGRES_TUPLES_OK,
                  "SELECT machine_id::text, model_type FROM model_versions WHERE id = $1::uuid", 1,
                  one, err, errlen);
    if (!res)
        return ENMS_EDB;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return enms_fail(err, errlen, ENMS_ENOTFOUND, "model version %s not found", version_id);
    }
    snprintf(machine, sizeof machine, "%s", PQgetvalue(res, 0, 0));
    snprintf(type, sizeof type, "%s", PQgetvalue(res, 0, 1));
    PQclear(res);
    const char *key[] = {machine, type};
    res = pg_exec(conn, PGRES_TUPLES_OK,
                  "SELECT pg_advisory_xact_lock(hashtextextended('model_versions:' || $1 || ':' || "
                  "$2, 0))",
                  2, key, err, errlen);
    if (!res)
        return ENMS_EDB;
    PQclear(res);
    res = pg_exec(conn, PGRES_TUPLES_OK,
                  "SELECT id::text FROM model_versions WHERE machine_id = $1::uuid "
                  "AND model_type = $2 AND is_active",
                  2, key, err, errlen);
    if (!res)
        return ENMS_EDB;
    if (PQntuples(res) > 0)
        snprintf(prev, prevlen, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    res = pg_exec(conn, PGRES_COMMAND_OK,
                  "UPDATE model_versions SET is_active = false WHERE machine_id = $1::uuid "
                  "AND model_type = $2 AND is_active AND id <> $3::uuid",
                  3, (const char *[]){machine, type, version_id}, err, errlen);
    if (!res)
        return ENMS_EDB;
    PQclear(res);
    /* Already active: keep its activation time, it was never off. */
    res = pg_exec(conn, PGRES_TUPLES_OK,
                  "UPDATE model_versions SET activated_at = CASE WHEN is_active THEN activated_at "
                  "ELSE now() END, is_active = true WHERE id = $1::uuid RETURNING version::text",
                  1, one, err, errlen);
    if (!res)
        return ENMS_EDB;
    if (version && versionlen)
        snprintf(version, versionlen, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return ENMS_OK;
}
