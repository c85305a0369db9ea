/* test_jobs.c - common/jobs.c's transitions against the real, migrated
 * PostgreSQL that tests/run.sh starts (ENMS_PG_DSN). Each test uses a
 * machine of its own, so the tests can run in parallel. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../common/error.h"
#include "../../common/jobs.h"
#include "../../common/pg.h"

static PGconn *connect_test_pg(void)
{
    const char *dsn = getenv("ENMS_PG_DSN");
    char err[256];
    cr_assert_not_null(dsn, "ENMS_PG_DSN unset: run through tests/run.sh");
    PGconn *conn = pg_connect(dsn, 5000, "test_jobs", err, sizeof err);
    cr_assert_not_null(conn, "%s", err);
    return conn;
}

/* Inserts a machine with a fresh id into machine (37 bytes). */
static void new_machine(PGconn *conn, char *machine)
{
    char err[256];
    PGresult *res = pg_exec(conn, PGRES_TUPLES_OK,
                            "INSERT INTO machines (name, type) VALUES ('test-' || "
                            "gen_random_uuid(), 'pump') RETURNING id",
                            0, NULL, err, sizeof err);
    cr_assert_not_null(res, "%s", err);
    snprintf(machine, 37, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
}

static long count_events(PGconn *conn, const char *job_id, const char *to_status)
{
    char err[256];
    const char *params[] = {job_id, to_status};
    PGresult *res = pg_exec(conn, PGRES_TUPLES_OK,
                            "SELECT count(*) FROM job_events WHERE job_id = $1 AND to_status = $2",
                            2, params, err, sizeof err);
    cr_assert_not_null(res, "%s", err);
    long n = atol(PQgetvalue(res, 0, 0));
    PQclear(res);
    return n;
}

Test(jobs, create_conflicts_while_active_and_names_the_holder)
{
    PGconn *conn = connect_test_pg();
    char machine[37], id1[37], id2[37], existing[37], err[256];
    new_machine(conn, machine);
    struct job_request req = {.model_type = "baseline", .machine_id = machine, .reason = "t"};
    cr_assert_eq(jobs_create(conn, &req, id1, existing, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(jobs_create(conn, &req, id2, existing, err, sizeof err), ENMS_ECONFLICT);
    cr_assert_str_eq(existing, id1);
    /* Another model type of the same machine is independent. */
    req.model_type = "anomaly";
    cr_assert_eq(jobs_create(conn, &req, id2, existing, err, sizeof err), ENMS_OK, "%s", err);
    /* Once the first finishes, a new one may start. */
    char prev[JOBS_STATUS_SIZE];
    cr_assert_eq(jobs_cancel(conn, id1, prev, err, sizeof err), ENMS_OK, "%s", err);
    req.model_type = "baseline";
    cr_assert_eq(jobs_create(conn, &req, id2, existing, err, sizeof err), ENMS_OK, "%s", err);
    PQfinish(conn);
}

Test(jobs, create_for_unknown_machine_is_not_found)
{
    PGconn *conn = connect_test_pg();
    char id[37], existing[37], err[256];
    struct job_request req = {.model_type = "baseline",
                              .machine_id = "00000000-0000-0000-0000-0000000000ff"};
    cr_assert_eq(jobs_create(conn, &req, id, existing, err, sizeof err), ENMS_ENOTFOUND);
    cr_assert(strstr(err, "not found") != NULL, "%s", err);
    PQfinish(conn);
}

Test(jobs, attempt_is_a_fencing_token)
{
    PGconn *conn = connect_test_pg();
    char machine[37], id[37], existing[37], err[256];
    struct job_record job, again;
    new_machine(conn, machine);
    struct job_request req = {
        .model_type = "probe", .machine_id = machine, .params_json = "{\"steps\": 3}"};
    cr_assert_eq(jobs_create(conn, &req, id, existing, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(jobs_start(conn, id, "w1", &job, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(job.attempts, 1);
    cr_assert_str_eq(job.model_type, "probe");
    cr_assert(strstr(job.params_json, "\"steps\": 3") != NULL, "%s", job.params_json);
    /* A second start (duplicate push) is refused. */
    cr_assert_eq(jobs_start(conn, id, "w2", &again, err, sizeof err), ENMS_ECONFLICT);
    job_record_clear(&again);
    cr_assert_eq(jobs_heartbeat(conn, id, 1, 40, "step 1", err, sizeof err), ENMS_OK, "%s", err);
    /* The worker is lost: housekeeping releases attempt 1; w2 takes attempt 2. */
    cr_assert_eq(jobs_release(conn, id, 1, "lease expired", err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(jobs_start(conn, id, "w2", &again, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(again.attempts, 2);
    /* The old attempt wakes up: every write it tries is rejected. */
    cr_assert_eq(jobs_heartbeat(conn, id, 1, 90, NULL, err, sizeof err), ENMS_ECONFLICT);
    cr_assert_eq(jobs_finish(conn, id, 1, "completed", NULL, "{}", err, sizeof err),
                 ENMS_ECONFLICT);
    cr_assert_eq(jobs_release(conn, id, 1, "x", err, sizeof err), ENMS_ECONFLICT);
    cr_assert_eq(jobs_finish(conn, id, 2, "completed", NULL, "{\"ok\": 1}", err, sizeof err),
                 ENMS_OK, "%s", err);
    cr_assert_eq(jobs_finish(conn, id, 2, "completed", NULL, NULL, err, sizeof err),
                 ENMS_ECONFLICT);
    char status[JOBS_STATUS_SIZE];
    int attempts = 0;
    cr_assert_eq(jobs_status(conn, id, status, &attempts, err, sizeof err), ENMS_OK);
    cr_assert_str_eq(status, "completed");
    cr_assert_eq(attempts, 2);
    cr_assert_eq(count_events(conn, id, "completed"), 1);
    cr_assert_eq(count_events(conn, id, "running"), 2);
    cr_assert_eq(count_events(conn, id, "pending"), 2); /* created + released */
    job_record_clear(&job);
    job_record_clear(&again);
    PQfinish(conn);
}

Test(jobs, cancel_wins_over_a_late_completion)
{
    PGconn *conn = connect_test_pg();
    char machine[37], id[37], existing[37], err[256], prev[JOBS_STATUS_SIZE];
    struct job_record job;
    new_machine(conn, machine);
    struct job_request req = {.model_type = "anomaly", .machine_id = machine};
    cr_assert_eq(jobs_create(conn, &req, id, existing, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(jobs_start(conn, id, "w1", &job, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(jobs_cancel(conn, id, prev, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_str_eq(prev, "running");
    cr_assert_eq(jobs_finish(conn, id, job.attempts, "completed", NULL, NULL, err, sizeof err),
                 ENMS_ECONFLICT);
    cr_assert_eq(jobs_cancel(conn, id, prev, err, sizeof err), ENMS_ECONFLICT);
    cr_assert_str_eq(prev, "cancelled");
    cr_assert_eq(jobs_cancel(conn, "00000000-0000-0000-0000-0000000000ff", prev, err, sizeof err),
                 ENMS_ENOTFOUND);
    job_record_clear(&job);
    PQfinish(conn);
}

Test(jobs, failed_job_gets_an_alert)
{
    PGconn *conn = connect_test_pg();
    char machine[37], id[37], existing[37], err[256];
    struct job_record job;
    new_machine(conn, machine);
    struct job_request req = {.model_type = "forecast_arima", .machine_id = machine};
    cr_assert_eq(jobs_create(conn, &req, id, existing, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(jobs_start(conn, id, "w1", &job, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(jobs_finish(conn, id, 1, "failed", "boom", NULL, err, sizeof err), ENMS_OK);
    cr_assert_eq(jobs_alert_failed(conn, id, "training failed: boom", err, sizeof err), ENMS_OK,
                 "%s", err);
    const char *params[] = {id};
    PGresult *res = pg_exec(conn, PGRES_TUPLES_OK,
                            "SELECT severity, alert_message FROM model_alerts WHERE "
                            "alert_type = 'training_failed' AND alert_details->>'job_id' = $1",
                            1, params, err, sizeof err);
    cr_assert_not_null(res, "%s", err);
    cr_assert_eq(PQntuples(res), 1);
    cr_assert_str_eq(PQgetvalue(res, 0, 0), "critical");
    cr_assert_str_eq(PQgetvalue(res, 0, 1), "training failed: boom");
    PQclear(res);
    job_record_clear(&job);
    PQfinish(conn);
}

/* One text value of a one-row query, or "" for NULL; into out (outlen). */
static void query_text(PGconn *conn, const char *sql, const char *job_id, char *out, size_t outlen)
{
    char err[256];
    const char *params[] = {job_id};
    PGresult *res = pg_exec(conn, PGRES_TUPLES_OK, sql, job_id ? 1 : 0, job_id ? params : NULL, err,
                            sizeof err);
    cr_assert_not_null(res, "%s", err);
    cr_assert_eq(PQntuples(res), 1, "%s", sql);
    snprintf(out, outlen, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
}

Test(jobs, complete_is_one_fenced_statement_with_the_result)
{
    PGconn *conn = connect_test_pg();
    char machine[37], id[37], existing[37], err[256], text[256];
    struct job_record job;
    new_machine(conn, machine);
    struct job_request req = {.model_type = "probe", .machine_id = machine};
    cr_assert_eq(jobs_create(conn, &req, id, existing, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(jobs_start(conn, id, "w1", &job, err, sizeof err), ENMS_OK, "%s", err);
    struct job_completion c = {.metrics_json = "{\"steps\": 3}",
                               .training_samples = 24,
                               .data_start = 1767225600, /* 2026-01-01T00:00:00Z */
                               .data_end = 0,
                               .feature_names_json = "[\"hour\", \"temp\"]"};
    /* Another attempt's completion changes nothing. */
    cr_assert_eq(jobs_complete(conn, id, job.attempts + 1, &c, err, sizeof err), ENMS_ECONFLICT);
    query_text(conn, "SELECT training_status FROM model_training_history WHERE id = $1::uuid", id,
               text, sizeof text);
    cr_assert_str_eq(text, "running");
    cr_assert_eq(jobs_complete(conn, id, job.attempts, &c, err, sizeof err), ENMS_OK, "%s", err);
    query_text(conn,
               "SELECT concat_ws('|', training_status, progress, stage, training_samples, "
               "training_metrics->>'steps', array_to_string(feature_names, ','), "
               "extract(epoch FROM training_data_start)::bigint, "
               "training_data_end IS NULL, training_end IS NOT NULL, error_message IS NULL) "
               "FROM model_training_history WHERE id = $1::uuid",
               id, text, sizeof text);
    cr_assert_str_eq(text, "completed|100|completed|24|3|hour,temp|1767225600|t|t|t");
    /* Completed at most once, whoever asks again. */
    cr_assert_eq(jobs_complete(conn, id, job.attempts, &c, err, sizeof err), ENMS_ECONFLICT);
    cr_assert_eq(jobs_finish(conn, id, job.attempts, "failed", "late", NULL, err, sizeof err),
                 ENMS_ECONFLICT);
    cr_assert_eq(count_events(conn, id, "completed"), 1);
    job_record_clear(&job);
    PQfinish(conn);
}

Test(jobs, start_commits_asynchronously_without_leaking_the_setting)
{
    PGconn *conn = connect_test_pg();
    char machine[37], id[37], existing[37], err[256], text[64];
    struct job_record job;
    new_machine(conn, machine);
    struct job_request req = {.model_type = "baseline", .machine_id = machine};
    cr_assert_eq(jobs_create(conn, &req, id, existing, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(jobs_start(conn, id, "w1", &job, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(job.attempts, 1);
    /* set_config(..., true) lasted for the start's own transaction only:
     * the session, and so every later commit on it, stays durable. */
    query_text(conn, "SHOW synchronous_commit", NULL, text, sizeof text);
    cr_assert_str_eq(text, "on");
    /* The hot statements were prepared on this connection. */
    query_text(conn,
               "SELECT string_agg(name, ',' ORDER BY name) FROM pg_prepared_statements "
               "WHERE name IN ('enms_jobs_create', 'enms_jobs_start')",
               NULL, text, sizeof text);
    cr_assert_str_eq(text, "enms_jobs_create,enms_jobs_start");
    /* A reset session lost them; they are prepared again, not failed. */
    PQreset(conn);
    cr_assert_eq(PQstatus(conn), CONNECTION_OK);
    cr_assert_eq(jobs_heartbeat(conn, id, 1, 50, "half", err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(jobs_finish(conn, id, 1, "failed", "x", NULL, err, sizeof err), ENMS_OK, "%s",
                 err);
    job_record_clear(&job);
    PQfinish(conn);
}

Test(jobs, a_lost_asynchronous_start_is_run_again_and_completed_once)
{
    PGconn *conn = connect_test_pg();
    char machine[37], id[37], existing[37], err[256], status[JOBS_STATUS_SIZE];
    struct job_record job, again;
    int attempts = -1;
    new_machine(conn, machine);
    struct job_request req = {.model_type = "anomaly", .machine_id = machine};
    cr_assert_eq(jobs_create(conn, &req, id, existing, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(jobs_start(conn, id, "w1", &job, err, sizeof err), ENMS_OK, "%s", err);
    /* What crash recovery leaves when the start's commit was not flushed:
     * the row as it was before it. */
    const char *params[] = {id};
    PGresult *res = pg_exec(conn, PGRES_COMMAND_OK,
                            "UPDATE model_training_history SET training_status = 'pending', "
                            "attempts = attempts - 1, worker_id = NULL WHERE id = $1::uuid",
                            1, params, err, sizeof err);
    cr_assert_not_null(res, "%s", err);
    PQclear(res);
    /* The worker that believed it ran the attempt cannot complete it... */
    struct job_completion c = {.training_samples = -1};
    cr_assert_eq(jobs_complete(conn, id, job.attempts, &c, err, sizeof err), ENMS_ECONFLICT);
    cr_assert_eq(jobs_status(conn, id, status, &attempts, err, sizeof err), ENMS_OK);
    cr_assert_str_eq(status, "pending");
    /* ... the job is still there to run, and completes exactly once. */
    cr_assert_eq(jobs_start(conn, id, "w2", &again, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(jobs_complete(conn, id, again.attempts, &c, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(jobs_complete(conn, id, again.attempts, &c, err, sizeof err), ENMS_ECONFLICT);
    cr_assert_eq(count_events(conn, id, "completed"), 1);
    job_record_clear(&job);
    job_record_clear(&again);
    PQfinish(conn);
}
