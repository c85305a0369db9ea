/* routes_evaluate.c - POST /api/v1/evaluate: evaluation on demand. Creates
 * an evaluate job for every active model version matching the optional
 * machine_id and model_type filters and pushes it onto the queue; the
 * workers evaluate each version on the readings it has not seen
 * (worker/evaluation.c, docs/evaluation.md).
 *
 * PostgreSQL decides duplicates: a (machine, type) that already has an
 * evaluate job pending or running is reported under "skipped" with that
 * job's id. A failed push is not an error: the job is recorded and
 * housekeeping re-dispatches it. */
#include "http.h"
#include "params.h"
#include "routes.h"
#include "server.h"
#include "../common/error.h"
#include "../common/jobs.h"
#include "../common/job_ops.h"
#include "../common/log.h"
#include "../common/pg.h"
#include "../common/queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVALUATE_MAX_JOBS 10000

static const char *const MODEL_TYPES[] = {"baseline", "anomaly", "forecast_arima", NULL};

static const struct param_spec EVALUATE_FIELDS[] = {
    {.name = "machine_id", .type = PARAM_UUID},
    {.name = "model_type", .type = PARAM_ENUM, .choices = MODEL_TYPES},
    {.name = "days", .type = PARAM_INT, .min = 1, .max = 90},
};
#define EVALUATE_FIELD_COUNT (sizeof EVALUATE_FIELDS / sizeof EVALUATE_FIELDS[0])

/* Appends {job_id, machine_id, model_type} to arr; -1 when out of memory. */
static int add_job(cJSON *arr, const char *job_id, const char *machine_id, const char *model_type)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "job_id", job_id) ||
        !cJSON_AddStringToObject(o, "machine_id", machine_id) ||
        !cJSON_AddStringToObject(o, "model_type", model_type) || !cJSON_AddItemToArray(arr, o)) {
        cJSON_Delete(o);
        return -1;
    }
    return 0;
}

/* 1 when the machine exists, 0 when not, -1 on a database error. */
static int machine_exists(PGconn *pg, const char *machine_id, char *err, size_t errlen)
{
    const char *params[] = {machine_id};
    PGresult *res = pg_exec(pg, PGRES_TUPLES_OK, "SELECT 1 FROM machines WHERE id = $1::uuid", 1,
                            params, err, errlen);
    if (!res)
        return -1;
    int found = PQntuples(res) == 1;
    PQclear(res);
    return found;
}

int route_evaluate(struct mg_connection *conn, void *cbdata)
{
    const struct api_server *srv = cbdata;
    const struct enms_config *cfg = srv->cfg;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    struct params p;
    char *body = NULL, *params_json = NULL;
    size_t bodylen = 0;
    char err[512];
    PGresult *res = NULL;
    cJSON *obj = NULL, *jobs, *skipped, *po = NULL;
    int status;

    params_init(&p, EVALUATE_FIELDS, EVALUATE_FIELD_COUNT, NULL);
    if (!http_method_is(conn, "POST"))
        return http_reply_error(conn, 405, "use POST");
    int rc = http_read_body(conn, cfg->http_max_body, &body, &bodylen);
    if (rc < 0)
        return -rc;
    if (params_read(&p, ri->query_string, ri->query_string ? strlen(ri->query_string) : 0, body,
                    bodylen, err, sizeof err) != ENMS_OK) {
        status = http_reply_error(conn, 400, "%s", err);
        goto done;
    }
    const char *machine_id = params_text(&p, "machine_id", NULL);
    const char *model_type = params_text(&p, "model_type", NULL);
    const struct param_value *days = params_get(&p, "days");
    if (days) {
        if (!(po = cJSON_CreateObject()) ||
            !cJSON_AddNumberToObject(po, "days", (double)days->num) ||
            !(params_json = cJSON_PrintUnformatted(po))) {
            status = http_reply_error(conn, 500, "out of memory");
            goto done;
        }
    }
    PGconn *pg = api_pg(conn, err, sizeof err);
    if (!pg) {
        status = http_reply_error(conn, 503, "postgresql unavailable: %s", err);
        goto done;
    }
    if (machine_id) {
        int found = machine_exists(pg, machine_id, err, sizeof err);
        if (found < 0) {
            status = http_reply_error(conn, 503, "postgresql unavailable: %s", err);
            goto done;
        }
        if (!found) {
            status = http_reply_error(conn, 404, "machine %s not found", machine_id);
            goto done;
        }
    }
    const char *qparams[] = {machine_id, model_type};
    res = pg_exec(pg, PGRES_TUPLES_OK,
                  "SELECT machine_id::text, model_type FROM model_versions "
                  "WHERE is_active AND model_type <> 'probe' "
                  "AND ($1::uuid IS NULL OR machine_id = $1::uuid) "
                  "AND ($2::text IS NULL OR model_type = $2) "
                  "ORDER BY machine_id, model_type LIMIT 10000",
                  2, qparams, err, sizeof err);
    if (!res) {
        status = http_reply_error(conn, 503, "postgresql unavailable: %s", err);
        goto done;
    }
    if (!(obj = cJSON_CreateObject()) || !(jobs = cJSON_AddArrayToObject(obj, "jobs")) ||
        !(skipped = cJSON_AddArrayToObject(obj, "skipped"))) {
        status = http_reply_error(conn, 500, "out of memory");
        goto done;
    }
    for (int i = 0; i < PQntuples(res) && i < EVALUATE_MAX_JOBS; i++) {
        char job_id[JOBS_ID_SIZE] = "", existing[JOBS_ID_SIZE] = "";
        const char *mid = PQgetvalue(res, i, 0), *mtype = PQgetvalue(res, i, 1);
        struct job_request req = {.model_type = mtype,
                                  .machine_id = mid,
                                  .trigger_type = "manual",
                                  .reason = "evaluation on demand",
                                  .triggered_by = "api",
                                  .params_json = params_json,
                                  .job_kind = "evaluate"};
        rc = jobs_create(pg, &req, job_id, existing, err, sizeof err);
        if (rc == ENMS_ECONFLICT) {
            if (add_job(skipped, existing, mid, mtype)) {
                status = http_reply_error(conn, 500, "out of memory");
                goto done;
            }
            continue;
        }
        if (rc == ENMS_ENOTFOUND)
            continue; /* the machine was deleted meanwhile */
        if (rc != ENMS_OK) {
            /* Jobs created before this one stay: each is a complete record
             * that workers run; the client sees the failure and may retry
             * (the duplicate rule then skips those). */
            status = PQstatus(pg) == CONNECTION_OK
                         ? http_reply_error(conn, 500, "job not recorded: %s", err)
                         : http_reply_error(conn, 503, "postgresql unavailable: %s", err);
            goto done;
        }
        if (add_job(jobs, job_id, mid, mtype)) {
            status = http_reply_error(conn, 500, "out of memory");
            goto done;
        }
        log_event(LOG_INFO, job_id, "evaluate job for machine %s (%s)", mid, mtype);
        redisContext *r = api_redis(conn, err, sizeof err);
        if (!r || job_dispatch(r, cfg->redis_prefix, NULL, job_id, mtype, mid, err, sizeof err) !=
                      ENMS_OK)
            log_event(LOG_WARN, job_id, "recorded but not queued (%s); housekeeping will push it",
                      err);
    }
    status = http_reply_item(conn, cJSON_GetArraySize(jobs) > 0 ? 202 : 200, obj);
done:
    PQclear(res);
    cJSON_Delete(obj);
    cJSON_Delete(po);
    cJSON_free(params_json);
    params_free(&p);
    free(body);
    return status;
}

/* The request readers (routes.h): the same tables the handlers above use. */
int route_evaluate_read(const char *qs, size_t qslen, const char *body, size_t bodylen, char *err,
                        size_t errlen)
{
    return routes_read_fields(EVALUATE_FIELDS, EVALUATE_FIELD_COUNT, qs, qslen, body, bodylen, err,
                              errlen);
}
