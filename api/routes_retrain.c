/* routes_retrain.c - POST /api/v1/model-performance/retrain/trigger: checks
 * the request, records a pending job in PostgreSQL, then hands its id to
 * Redis (live hash, event, queue push) and answers 202.
 *
 * PostgreSQL decides everything that matters: the machine must exist (its
 * foreign key) and only one job per (model_type, machine_id) may be active
 * (the partial unique index), so concurrent triggers need no lock here.
 * Redis failures after the row is written do not fail the request: the job
 * is recorded, and housekeeping pushes pending jobs missing from Redis. */
#include "http.h"
#include "jobs_query.h"
#include "params.h"
#include "routes.h"
#include "server.h"
#include "../common/error.h"
#include "../common/jobs.h"
#include "../common/job_ops.h"
#include "../common/log.h"
#include "../common/queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REASON_MAX         500
#define PARAMS_OBJECT_MAX  4096
#define DEFAULT_REASON     "manual retrain"
#define PROBE_STEPS_DFLT   10
#define PROBE_STEP_MS_DFLT 100

static const char *const MODEL_TYPES[] = {"baseline", "anomaly", "forecast_arima", NULL};
static const char *const MODEL_TYPES_PROBE[] = {"baseline", "anomaly", "forecast_arima", "probe",
                                                NULL};
static const char *const TRIGGER_TYPES[] = {
    "manual", "scheduled", "drift", "drift_detected", "performance_degradation", "ab_test", NULL};

enum { F_MODEL_TYPE, F_MACHINE_ID, F_TRIGGER_TYPE, F_REASON, F_PARAMS, F_COUNT };

static const struct param_spec TRIGGER_FIELDS[F_COUNT] = {
    [F_MODEL_TYPE] = {.name = "model_type",
                      .type = PARAM_ENUM,
                      .required = 1,
                      .choices = MODEL_TYPES},
    [F_MACHINE_ID] = {.name = "machine_id", .type = PARAM_UUID, .required = 1},
    [F_TRIGGER_TYPE] = {.name = "trigger_type", .type = PARAM_ENUM, .choices = TRIGGER_TYPES},
    [F_REASON] = {.name = "reason", .type = PARAM_STRING, .max_len = REASON_MAX},
    [F_PARAMS] = {.name = "params", .type = PARAM_OBJECT, .max_len = PARAMS_OBJECT_MAX},
};

/* What `params` may hold. Probe jobs exercise the queue: how many steps,
 * how long each, and at which step to fail, crash the worker or hang. The
 * real model types take the training window, in days back from now. */
static const struct param_spec PROBE_PARAMS[] = {
    {.name = "steps", .type = PARAM_INT, .min = 1, .max = 100000},
    {.name = "step_ms", .type = PARAM_INT, .min = 0, .max = 60000},
    {.name = "fail_at", .type = PARAM_INT, .min = 1, .max = 100000},
    {.name = "crash_at", .type = PARAM_INT, .min = 1, .max = 100000},
    {.name = "hang_at", .type = PARAM_INT, .min = 1, .max = 100000},
};
static const struct param_spec MODEL_PARAMS[] = {
    {.name = "days", .type = PARAM_INT, .min = 1, .max = 3650},
    /* The window ends here instead of at the newest reading (train on the
     * past, then evaluate or check drift on what came after). */
    {.name = "until", .type = PARAM_TIME},
    {.name = "utc_offset_hours", .type = PARAM_INT, .min = -14, .max = 14},
};
#define MODEL_PARAMS_COUNT (sizeof MODEL_PARAMS / sizeof MODEL_PARAMS[0])

/* The params object the worker receives for a real model type: the checked
 * fields in their normalised form (times as UTC "...Z"), so the worker never
 * parses client spellings. Returns malloc'd text or NULL (out of memory). */
static char *model_params_json(const struct params *sub)
{
    cJSON *o = cJSON_CreateObject();
    char *text = NULL;
    if (!o)
        return NULL;
    for (size_t i = 0; i < MODEL_PARAMS_COUNT; i++) {
        const struct param_value *v = params_get(sub, MODEL_PARAMS[i].name);
        if (!v)
            continue;
        if (MODEL_PARAMS[i].type == PARAM_INT) {
            if (!cJSON_AddNumberToObject(o, MODEL_PARAMS[i].name, (double)v->num))
                goto done;
        } else if (!cJSON_AddStringToObject(o, MODEL_PARAMS[i].name, v->text)) {
            goto done;
        }
    }
    text = cJSON_PrintUnformatted(o);
done:
    cJSON_Delete(o);
    return text;
}

/* Seconds a job of this type takes when no completed job tells us better. */
static double default_duration_s(const char *model_type, const struct params *sub)
{
    if (strcmp(model_type, "probe") == 0) {
        const struct param_value *steps = params_get(sub, "steps");
        const struct param_value *step_ms = params_get(sub, "step_ms");
        return (steps ? (double)steps->num : PROBE_STEPS_DFLT) *
               (step_ms ? (double)step_ms->num : PROBE_STEP_MS_DFLT) / 1000.0;
    }
    if (strcmp(model_type, "baseline") == 0)
        return 30;
    if (strcmp(model_type, "anomaly") == 0)
        return 60;
    return 120;
}

static int reply_conflict(struct mg_connection *conn, const char *existing_id)
{
    cJSON *obj = cJSON_CreateObject();
    if (!obj)
        return http_reply_error(conn, 500, "out of memory");
    cJSON_AddFalseToObject(obj, "triggered");
    cJSON_AddStringToObject(obj, "reason", "Training already in progress");
    if (existing_id[0])
        cJSON_AddStringToObject(obj, "training_job_id", existing_id);
    else
        cJSON_AddNullToObject(obj, "training_job_id");
    cJSON_AddStringToObject(obj, "detail", "Training already in progress");
    int status = http_reply_item(conn, 409, obj);
    cJSON_Delete(obj);
    return status;
}

/* Puts the new job into Redis (job_ops.h). Returns 1 when it was pushed;
 * otherwise the job is recorded and housekeeping pushes it later. */
static int dispatch(struct mg_connection *conn, const char *job_id, const char *model_type,
                    const char *machine_id)
{
    const struct api_server *srv = api_server_of(conn);
    char err[256];
    redisContext *r = api_redis(conn, err, sizeof err);
    if (!r || job_dispatch(r, srv->cfg->redis_prefix, NULL, job_id, model_type, machine_id, err,
                           sizeof err) != ENMS_OK) {
        log_event(LOG_WARN, job_id,
                  "job recorded but not queued (%s); housekeeping will "
                  "dispatch it",
                  err);
        return 0;
    }
    return 1;
}

/* Reads the trigger request (query string qs, may be NULL, and body) into p,
 * initialised on the trigger fields, and its params object into sub,
 * initialised on MODEL_PARAMS (switched to PROBE_PARAMS for a probe job).
 * *params_json is then the params text to store: NULL, p's own text for a
 * probe, or *normalised (malloc'd, the caller frees it). Returns 0 or the
 * status to answer (400; 500 out of memory) with err set. */
static int trigger_read(struct params *p, struct params *sub, const char *qs, size_t qslen,
                        const char *body, size_t bodylen, const char **params_json,
                        char **normalised, char *err, size_t errlen)
{
    *params_json = NULL;
    if (params_read(p, qs, qslen, body, bodylen, err, errlen) != ENMS_OK)
        return 400;
    const char *model_type = params_text(p, "model_type", NULL);
    const char *text = params_text(p, "params", NULL);
    if (strcmp(model_type, "probe") == 0)
        params_init(sub, PROBE_PARAMS, sizeof PROBE_PARAMS / sizeof PROBE_PARAMS[0], "params.");
    if (text && params_parse_json(sub, text, strlen(text), err, errlen) != ENMS_OK)
        return 400;
    if (text && strcmp(model_type, "probe") != 0) {
        if (!(*normalised = model_params_json(sub))) {
            snprintf(err, errlen, "out of memory");
            return 500;
        }
        text = *normalised;
    }
    *params_json = text;
    return 0;
}

int route_retrain_trigger(struct mg_connection *conn, void *cbdata)
{
    const struct api_server *srv = cbdata;
    const struct enms_config *cfg = srv->cfg;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    struct param_spec fields[F_COUNT];
    struct params p, sub;
    char *body = NULL, *normalised = NULL;
    size_t bodylen = 0;
    char err[512];
    char job_id[JOBS_ID_SIZE] = "", existing[JOBS_ID_SIZE] = "";
    char estimate[JOBS_ISO_TIME_SZ] = "";
    cJSON *obj = NULL;
    int status;

    memcpy(fields, TRIGGER_FIELDS, sizeof fields);
    if (cfg->enable_probe)
        fields[F_MODEL_TYPE].choices = MODEL_TYPES_PROBE;
    params_init(&p, fields, F_COUNT, NULL);
    params_init(&sub, MODEL_PARAMS, MODEL_PARAMS_COUNT, "params.");

    if (!http_method_is(conn, "POST"))
        return http_reply_error(conn, 405, "use POST");
    int rc = http_read_body(conn, cfg->http_max_body, &body, &bodylen);
    if (rc < 0)
        return -rc;
    const char *params_json = NULL;
    if ((status = trigger_read(&p, &sub, ri->query_string,
                               ri->query_string ? strlen(ri->query_string) : 0, body, bodylen,
                               &params_json, &normalised, err, sizeof err)) != 0) {
        status = http_reply_error(conn, status, "%s", err);
        goto done;
    }
    const char *model_type = params_text(&p, "model_type", NULL);
    const char *machine_id = params_text(&p, "machine_id", NULL);
    const char *trigger_type = params_text(&p, "trigger_type", "manual");
    const char *reason = params_text(&p, "reason", DEFAULT_REASON);

    PGconn *pg = api_pg(conn, err, sizeof err);
    if (!pg) {
        status = http_reply_error(conn, 503, "postgresql unavailable: %s", err);
        goto done;
    }
    struct job_request req = {.model_type = model_type,
                              .machine_id = machine_id,
                              .trigger_type = trigger_type,
                              .reason = reason,
                              .triggered_by = "api",
                              .params_json = params_json};
    rc = jobs_create(pg, &req, job_id, existing, err, sizeof err);
    if (rc == ENMS_ENOTFOUND) {
        status = http_reply_error(conn, 404, "machine %s not found", machine_id);
        goto done;
    }
    if (rc == ENMS_ECONFLICT) {
        status = reply_conflict(conn, existing);
        goto done;
    }
    if (rc != ENMS_OK) {
        status = PQstatus(pg) == CONNECTION_OK
                     ? http_reply_error(conn, 500, "job not recorded: %s", err)
                     : http_reply_error(conn, 503, "postgresql unavailable: %s", err);
        goto done;
    }
    log_event(LOG_INFO, job_id, "queued %s for machine %s (%s)", model_type, machine_id,
              trigger_type);
    if (jobs_query_estimate(pg, model_type, default_duration_s(model_type, &sub), estimate, err,
                            sizeof err) != ENMS_OK)
        log_event(LOG_WARN, job_id, "no completion estimate: %s", err);
    dispatch(conn, job_id, model_type, machine_id);

    obj = cJSON_CreateObject();
    if (!obj) {
        status = http_reply_error(conn, 500, "out of memory");
        goto done;
    }
    cJSON_AddTrueToObject(obj, "triggered");
    cJSON_AddStringToObject(obj, "training_job_id", job_id);
    cJSON_AddStringToObject(obj, "status", "pending");
    cJSON_AddStringToObject(obj, "trigger_type", trigger_type);
    cJSON_AddStringToObject(obj, "reason", reason);
    cJSON_AddStringToObject(obj, "model_type", model_type);
    cJSON_AddStringToObject(obj, "machine_id", machine_id);
    if (estimate[0])
        cJSON_AddStringToObject(obj, "estimated_completion", estimate);
    else
        cJSON_AddNullToObject(obj, "estimated_completion");
    status = http_reply_item(conn, 202, obj);
done:
    cJSON_Delete(obj);
    params_free(&sub);
    params_free(&p);
    free(normalised);
    free(body);
    return status;
}

/* The request reader (routes.h). It accepts the probe type too, as with
 * ENMS_ENABLE_PROBE=1, so that both kinds of params object are read. */
int route_retrain_trigger_read(const char *qs, size_t qslen, const char *body, size_t bodylen,
                               char *err, size_t errlen)
{
    struct param_spec fields[F_COUNT];
    struct params p, sub;
    const char *params_json;
    char *normalised = NULL;
    memcpy(fields, TRIGGER_FIELDS, sizeof fields);
    fields[F_MODEL_TYPE].choices = MODEL_TYPES_PROBE;
    params_init(&p, fields, F_COUNT, NULL);
    params_init(&sub, MODEL_PARAMS, MODEL_PARAMS_COUNT, "params.");
    int status =
        trigger_read(&p, &sub, qs, qslen, body, bodylen, &params_json, &normalised, err, errlen);
    free(normalised);
    params_free(&sub);
    params_free(&p);
    return status;
}
