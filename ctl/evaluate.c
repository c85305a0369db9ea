/* evaluate.c - `enmsctl evaluate`: evaluation on demand from the command
 * line. Creates an evaluate job for every active model version matching
 * --machine and --model-type (the same code the evaluation schedule runs,
 * worker/housekeeping.c), pushes it, and with --wait follows the jobs until
 * they end and prints each one's result. What an evaluation does is
 * worker/evaluation.c's business (docs/evaluation.md). */
#include "ctl.h"
#include "../common/error.h"
#include "../common/pg.h"
#include "../common/queue.h"
#include "../worker/housekeeping.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAIT_DEFAULT_S 600
#define WAIT_MAX_S     86400
#define POLL_MS        200

static const char *const model_types[] = {"baseline", "anomaly", "forecast_arima", NULL};

struct eval_opts {
    const char *machine_id;
    const char *model_type;
    int days; /* 0: the worker's default */
    int wait;
    int timeout_s;
    int help;
};

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: enmsctl evaluate [--machine ID] [--model-type T] [--days N] [--wait]\n"
            "                        [--timeout S]\n\n"
            "Creates an evaluate job for every active model (filtered by machine and model\n"
            "type) and queues it. Each job evaluates its model on the readings it has not\n"
            "seen and records the metrics (docs/evaluation.md).\n\n"
            "  --machine ID       only this machine (uuid)\n"
            "  --model-type T     baseline, anomaly or forecast_arima\n"
            "  --days N           at most the newest N days of new readings, 1..90 (default 7)\n"
            "  --wait             wait for the jobs to end and print their results; exit 1\n"
            "                     when one failed\n"
            "  --timeout S        how long --wait waits, 1..%d s (default %d)\n",
            WAIT_MAX_S, WAIT_DEFAULT_S);
}

static int parse_int(const char *text, long min, long max, int *out)
{
    char *end = NULL;
    if (!text || !*text)
        return ENMS_EINVAL;
    long v = strtol(text, &end, 10);
    if (*end != '\0' || v < min || v > max)
        return ENMS_EINVAL;
    *out = (int)v;
    return ENMS_OK;
}

static int parse_opts(int argc, char **argv, struct eval_opts *o, char *err, size_t errlen)
{
    memset(o, 0, sizeof *o);
    o->timeout_s = WAIT_DEFAULT_S;
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        const char *v;
        if (strcmp(argv[i], "--help") == 0) {
            o->help = 1;
        } else if (strcmp(argv[i], "--wait") == 0) {
            o->wait = 1;
        } else if ((v = ctl_option(argc, argv, &i, "--machine", &missing))) {
            if (!queue_is_uuid(v, strlen(v)))
                return enms_fail(err, errlen, ENMS_EINVAL, "--machine: not a uuid: %s", v);
            o->machine_id = v;
        } else if ((v = ctl_option(argc, argv, &i, "--model-type", &missing))) {
            int ok = 0;
            for (const char *const *t = model_types; *t; t++)
                ok |= strcmp(*t, v) == 0;
            if (!ok)
                return enms_fail(err, errlen, ENMS_EINVAL,
                                 "--model-type: must be baseline, anomaly or forecast_arima");
            o->model_type = v;
        } else if ((v = ctl_option(argc, argv, &i, "--days", &missing))) {
            if (parse_int(v, 1, 90, &o->days) != ENMS_OK)
                return enms_fail(err, errlen, ENMS_EINVAL, "--days: an integer 1..90");
        } else if ((v = ctl_option(argc, argv, &i, "--timeout", &missing))) {
            if (parse_int(v, 1, WAIT_MAX_S, &o->timeout_s) != ENMS_OK)
                return enms_fail(err, errlen, ENMS_EINVAL, "--timeout: an integer 1..%d",
                                 WAIT_MAX_S);
        } else if (missing) {
            return enms_fail(err, errlen, ENMS_EINVAL, "%s needs a value", argv[i]);
        } else {
            return enms_fail(err, errlen, ENMS_EINVAL, "unknown option %s", argv[i]);
        }
    }
    return ENMS_OK;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits for each job of arr to end (timeout_s in all), printing its id,
 * status and result (or error). ENMS_OK when all completed; ENMS_ECONFLICT
 * when one failed, was cancelled or was still running at the timeout;
 * ENMS_EDB when PostgreSQL stopped answering. */
static int wait_jobs(PGconn *pg, const cJSON *arr, int timeout_s)
{
    const cJSON *it;
    long long waited_ms = 0;
    int failed = 0;
    cJSON_ArrayForEach(it, arr)
    {
        const char *id = cJSON_GetObjectItemCaseSensitive(it, "job_id")->valuestring;
        const char *params[] = {id};
        for (;;) {
            char err[256];
            PGresult *res = pg_exec(pg, PGRES_TUPLES_OK,
                                    "SELECT training_status, training_metrics::text, "
                                    "COALESCE(error_message, '') FROM model_training_history "
                                    "WHERE id = $1::uuid",
                                    1, params, err, sizeof err);
            if (!res) {
                fprintf(stderr, "enmsctl evaluate: %s\n", err);
                return ENMS_EDB;
            }
            const char *st = PQntuples(res) ? PQgetvalue(res, 0, 0) : "missing";
            if (strcmp(st, "pending") != 0 && strcmp(st, "running") != 0) {
                int ok = strcmp(st, "completed") == 0;
                printf("%s %s %s\n", id, st,
                       ok ? PQgetvalue(res, 0, 1)
                          : (PQntuples(res) ? PQgetvalue(res, 0, 2) : "job not found"));
                failed |= !ok;
                PQclear(res);
                break;
            }
            PQclear(res);
            if (waited_ms >= (long long)timeout_s * 1000) {
                printf("%s %s (still %s after %d s)\n", id, st, st, timeout_s);
                failed = 1;
                break;
            }
            sleep_ms(POLL_MS);
            waited_ms += POLL_MS;
        }
    }
    return failed ? ENMS_ECONFLICT : ENMS_OK;
}

int ctl_evaluate(const struct enms_config *cfg, int argc, char **argv)
{
    struct eval_opts o;
    struct ctl_conn conn;
    char err[512], *params_json = NULL;
    cJSON *created = NULL, *skipped = NULL, *po = NULL;
    const cJSON *it;
    int rc, count = 0;

    memset(&conn, 0, sizeof conn);
    if ((rc = parse_opts(argc, argv, &o, err, sizeof err)) != ENMS_OK) {
        fprintf(stderr, "enmsctl evaluate: %s\n\n", err);
        print_usage(stderr);
        return rc;
    }
    if (o.help) {
        print_usage(stdout);
        return ENMS_OK;
    }
    if (o.days && (!(po = cJSON_CreateObject()) || !cJSON_AddNumberToObject(po, "days", o.days) ||
                   !(params_json = cJSON_PrintUnformatted(po)))) {
        rc = enms_fail(err, sizeof err, ENMS_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = ctl_connect(cfg, 1, 1, "enmsctl-evaluate", &conn, err, sizeof err)) != ENMS_OK)
        goto fail;
    if (o.machine_id) {
        const char *params[] = {o.machine_id};
        PGresult *res =
            pg_exec(conn.pg, PGRES_TUPLES_OK, "SELECT 1 FROM machines WHERE id = $1::uuid", 1,
                    params, err, sizeof err);
        if (!res) {
            rc = ENMS_EDB;
            goto fail;
        }
        int found = PQntuples(res) == 1;
        PQclear(res);
        if (!found) {
            rc = enms_fail(err, sizeof err, ENMS_ENOTFOUND, "machine %s not found", o.machine_id);
            goto fail;
        }
    }
    if (!(created = cJSON_CreateArray()) || !(skipped = cJSON_CreateArray())) {
        rc = enms_fail(err, sizeof err, ENMS_ENOMEM, "out of memory");
        goto fail;
    }
    rc = housekeeping_monitoring_jobs(conn.pg, conn.redis, cfg, "evaluate", o.machine_id,
                                      o.model_type, "manual", "enmsctl", params_json, created,
                                      skipped, &count, err, sizeof err);
    /* Whatever was created before a failure is real: show it. */
    cJSON_ArrayForEach(it, created)
    {
        printf("queued  %s  %s  %s\n", cJSON_GetObjectItem(it, "job_id")->valuestring,
               cJSON_GetObjectItem(it, "machine_id")->valuestring,
               cJSON_GetObjectItem(it, "model_type")->valuestring);
    }
    cJSON_ArrayForEach(it, skipped)
    {
        printf("skipped %s  %s  %s  (an evaluation is already queued)\n",
               cJSON_GetObjectItem(it, "job_id")->valuestring,
               cJSON_GetObjectItem(it, "machine_id")->valuestring,
               cJSON_GetObjectItem(it, "model_type")->valuestring);
    }
    if (rc != ENMS_OK)
        goto fail;
    if (count == 0 && cJSON_GetArraySize(skipped) == 0)
        printf("no active model matches\n");
    fflush(stdout);
    if (o.wait)
        rc = wait_jobs(conn.pg, created, o.timeout_s);
    goto done;
fail:
    fprintf(stderr, "enmsctl evaluate: %s\n", err);
done:
    cJSON_Delete(created);
    cJSON_Delete(skipped);
    cJSON_Delete(po);
    cJSON_free(params_json);
    ctl_disconnect(&conn);
    return rc;
}
