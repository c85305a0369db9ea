/* jobs.c - `enmsctl jobs`: the job history from PostgreSQL, newest first,
 * filtered by status, model type and machine, as a table or JSON lines.
 *
 * It reads only; cancel and requeue live in queue_ops.c. Filters are
 * checked against the schema's value sets before any query, and every one
 * is a bound parameter. */
#include "ctl.h"
#include "../common/error.h"
#include "../common/pg.h"
#include "../common/queue.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JOBS_LIMIT_DEFAULT 20
#define JOBS_LIMIT_MAX     1000

static const char *const job_statuses[] = {"pending", "running",   "completed",
                                           "failed",  "cancelled", NULL};
static const char *const model_types[] = {"baseline", "anomaly", "forecast_arima", "probe", NULL};

struct jobs_opts {
    const char *status;     /* NULL: any */
    const char *model_type; /* NULL: any */
    const char *machine_id; /* NULL: any */
    long limit;
    int json;
    int help;
};

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: enmsctl jobs [--status S] [--model-type T] [--machine-id UUID] [--limit N]\n"
            "                    [--json]\n\n"
            "Lists jobs from PostgreSQL, newest first.\n\n"
            "  --status S        pending, running, completed, failed or cancelled\n"
            "  --model-type T    baseline, anomaly, forecast_arima or probe\n"
            "  --machine-id UUID only this machine's jobs\n"
            "  --limit N         at most N jobs, 1..%d (default %d)\n"
            "  --json            one JSON object per line instead of a table\n",
            JOBS_LIMIT_MAX, JOBS_LIMIT_DEFAULT);
}

static int one_of(const char *value, const char *const *set)
{
    for (int i = 0; set[i]; i++) {
        if (strcmp(value, set[i]) == 0)
            return 1;
    }
    return 0;
}

static int parse_opts(int argc, char **argv, struct jobs_opts *o, char *err, size_t errlen)
{
    memset(o, 0, sizeof *o);
    o->limit = JOBS_LIMIT_DEFAULT;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int missing = 0;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            o->help = 1;
        } else if (strcmp(argv[i], "--json") == 0) {
            o->json = 1;
        } else if ((v = ctl_option(argc, argv, &i, "--status", &missing))) {
            if (!one_of(v, job_statuses))
                return enms_fail(err, errlen, ENMS_EINVAL,
                                 "--status must be pending, running, completed, failed or "
                                 "cancelled");
            o->status = v;
        } else if ((v = ctl_option(argc, argv, &i, "--model-type", &missing))) {
            if (!one_of(v, model_types))
                return enms_fail(err, errlen, ENMS_EINVAL,
                                 "--model-type must be baseline, anomaly, forecast_arima or "
                                 "probe");
            o->model_type = v;
        } else if ((v = ctl_option(argc, argv, &i, "--machine-id", &missing))) {
            if (!queue_is_uuid(v, strlen(v)))
                return enms_fail(err, errlen, ENMS_EINVAL, "--machine-id must be a uuid");
            o->machine_id = v;
        } else if ((v = ctl_option(argc, argv, &i, "--limit", &missing))) {
            if (config_parse_int(v, 1, JOBS_LIMIT_MAX, &o->limit) != ENMS_OK)
                return enms_fail(err, errlen, ENMS_EINVAL, "--limit must be a number in 1..%d",
                                 JOBS_LIMIT_MAX);
        } else if (missing) {
            return enms_fail(err, errlen, ENMS_EINVAL, "%s needs a value", argv[i]);
        } else {
            return enms_fail(err, errlen, ENMS_EINVAL, "unknown option \"%s\"", argv[i]);
        }
    }
    return ENMS_OK;
}

static const char *const columns[] = {"id",         "model_type", "machine_id",   "status",
                                      "progress",   "attempts",   "worker_id",    "created_at",
                                      "updated_at", "queue_name", "error_message"};

/* Prints one row as a JSON object; numbers stay numbers, NULL stays null. */
static int print_json_row(const PGresult *res, int row)
{
    cJSON *o = cJSON_CreateObject();
    char *text = NULL;
    int rc = ENMS_ENOMEM;
    if (!o)
        goto done;
    for (int c = 0; c < (int)(sizeof columns / sizeof columns[0]); c++) {
        const char *v = PQgetvalue(res, row, c);
        cJSON *item = PQgetisnull(res, row, c) ? cJSON_CreateNull()
                      : (c == 4 || c == 5)     ? cJSON_CreateNumber(atof(v))
                                               : cJSON_CreateString(v);
        if (!item || !cJSON_AddItemToObject(o, columns[c], item)) {
            cJSON_Delete(item);
            goto done;
        }
    }
    text = cJSON_PrintUnformatted(o);
    if (!text)
        goto done;
    printf("%s\n", text);
    rc = ENMS_OK;
done:
    cJSON_free(text);
    cJSON_Delete(o);
    return rc;
}

int ctl_jobs(const struct enms_config *cfg, int argc, char **argv)
{
    struct jobs_opts o;
    struct ctl_conn conn = {0};
    PGresult *res = NULL;
    char err[512], limit[16];
    int rc = parse_opts(argc, argv, &o, err, sizeof err);
    if (rc != ENMS_OK) {
        fprintf(stderr, "enmsctl jobs: %s (see enmsctl jobs --help)\n", err);
        return rc;
    }
    if (o.help) {
        print_usage(stdout);
        return ENMS_OK;
    }
    if ((rc = ctl_connect(cfg, 1, 0, "enmsctl-jobs", &conn, err, sizeof err)) != ENMS_OK)
        goto done;
    snprintf(limit, sizeof limit, "%ld", o.limit);
    const char *params[] = {o.status, o.model_type, o.machine_id, limit};
    res = pg_exec(conn.pg, PGRES_TUPLES_OK,
                  "SELECT id, model_type, machine_id, training_status, progress, attempts, "
                  "worker_id, "
                  "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
                  "to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
                  "queue_name, error_message FROM model_training_history "
                  "WHERE ($1::text IS NULL OR training_status = $1) "
                  "AND ($2::text IS NULL OR model_type = $2) "
                  "AND ($3::uuid IS NULL OR machine_id = $3::uuid) "
                  "ORDER BY created_at DESC, id DESC LIMIT $4::int",
                  4, params, err, sizeof err);
    if (!res) {
        rc = ENMS_EDB;
        goto done;
    }
    if (o.json) {
        for (int i = 0; i < PQntuples(res); i++) {
            if ((rc = print_json_row(res, i)) != ENMS_OK) {
                enms_fail(err, sizeof err, rc, "out of memory");
                goto done;
            }
        }
        goto done;
    }
    printf("%-36s %-14s %-36s %-9s %4s %3s %-24s %-20s %s\n", "ID", "MODEL", "MACHINE", "STATUS",
           "PCT", "ATT", "WORKER", "CREATED (UTC)", "ERROR");
    for (int i = 0; i < PQntuples(res); i++) {
        char worker[25], error[61];
        ctl_cell(worker, sizeof worker, PQgetisnull(res, i, 6) ? "-" : PQgetvalue(res, i, 6));
        ctl_cell(error, sizeof error, PQgetvalue(res, i, 10));
        printf("%-36s %-14s %-36s %-9s %4s %3s %-24s %-20s %s\n", PQgetvalue(res, i, 0),
               PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
               PQgetvalue(res, i, 4), PQgetvalue(res, i, 5), worker, PQgetvalue(res, i, 7), error);
    }
    if (PQntuples(res) == 0)
        printf("(no jobs)\n");
done:
    if (rc != ENMS_OK)
        fprintf(stderr, "enmsctl jobs: %s\n", err);
    if (res)
        PQclear(res);
    ctl_disconnect(&conn);
    return rc;
}
