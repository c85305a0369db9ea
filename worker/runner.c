/* runner.c - one job's life in the worker (see runner.h): start, train on a
 * thread of its own, settle. Every PostgreSQL write is a compare-and-set on
 * the attempt (the fencing token), so whatever this worker believes, it can
 * never overwrite a newer attempt or a cancellation. */
#include "runner.h"
#include "anomaly_scoring.h"
#include "evaluation.h"
#include "heartbeat.h"
#include "worker_stats.h"
#include "../common/error.h"
#include "../common/log.h"
#include "../common/pg.h"
#include "../common/events.h"
#include "../common/queue.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#define BACKOFF_FIRST_MS    200
#define BACKOFF_MAX_MS      5000
#define REDIS_CLEANUP_TRIES 6
#define RECOVER_MAX_ENTRIES 1000

/* How a job ends, as far as this worker is concerned. */
enum outcome {
    OUT_COMPLETE,  /* store the result and mark it completed */
    OUT_FAIL,      /* mark it failed with a message */
    OUT_CANCELLED, /* already cancelled (or cancel it): nothing else to write */
    OUT_RELEASE,   /* hand it back: pending again, pushed onto its queue */
    OUT_ABANDON,   /* not ours any more: touch nothing but our own list */
};

long long runner_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int runner_request_stop(struct run *run, enum stop_reason reason)
{
    int none = STOP_NONE;
    if (!atomic_compare_exchange_strong(&run->reason, &none, (int)reason))
        return 0;
    atomic_store(&run->stop, 1);
    return 1;
}

int runner_redis(struct worker *w, char *err, size_t errlen)
{
    return redis_ensure(&w->redis, w->redis_url, w->cfg->connect_timeout_ms, w->cfg->io_timeout_ms,
                        err, errlen);
}

int runner_pg(struct worker *w, char *err, size_t errlen)
{
    return pg_ensure(&w->pg, w->cfg->pg_dsn, w->cfg->connect_timeout_ms, "enms-worker", err,
                     errlen);
}

/* Sleeps ms in slices short enough that a stopping worker is not held up. */
static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Next backoff delay: half of the current step plus up to half again of
 * jitter, so many workers hitting the same outage spread their retries. */
static long backoff_next(struct worker *w, long *step_ms)
{
    long half = *step_ms / 2;
    long delay = half + (long)(rand_r(&w->seed) % (unsigned long)(half + 1));
    *step_ms = *step_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : *step_ms * 2;
    return delay;
}

/* The event `event` of this attempt, as published on the events channel
 * (common/events.h). The strings are borrowed: valid while run and the
 * arguments are. */
static struct job_event run_event(const struct run *run, const char *event, const char *status,
                                  int percent, const char *stage, const char *error)
{
    return (struct job_event){.event = event,
                              .job_id = run->job.id,
                              .status = status,
                              .progress_pct = percent,
                              .stage = stage,
                              .model_type = run->job.model_type,
                              .machine_id = run->job.machine_id,
                              .attempt = run->job.attempts,
                              .worker_id = run->w->cfg->worker_id,
                              .error_message = error};
}

static void publish_event(struct run *run, const char *event, const char *status, int percent,
                          const char *stage, const char *error)
{
    struct worker *w = run->w;
    char err[256];
    struct job_event ev = run_event(run, event, status, percent, stage, error);
    if (runner_redis(w, err, sizeof err) != ENMS_OK ||
        job_event_publish(w->redis, w->cfg->redis_prefix, &ev, err, sizeof err) != ENMS_OK)
        log_event(LOG_WARN, run->job.id, "cannot publish %s: %s", event, err);
}

void runner_publish(struct run *run, const char *event, const char *status, const char *error)
{
    char stage[128];
    int percent;

    pthread_mutex_lock(&run->lock);
    percent = run->percent;
    snprintf(stage, sizeof stage, "%s", run->stage);
    pthread_mutex_unlock(&run->lock);
    publish_event(run, event, status, percent, stage, error);
}

void runner_publish_stage(struct run *run, int percent, const char *stage)
{
    publish_event(run, "training.progress", "running", percent, stage, NULL);
}

/* Appends the job's live hash (HSET + EXPIRE) to p with the run's latest
 * progress. Returns the HSET's index or -1. */
static int pipe_live(struct queue_pipe *p, struct run *run, const char *status, const char *error,
                     int ttl_s)
{
    struct worker *w = run->w;
    char attempt[16], percent[16], now_text[24], stage[128];
    pthread_mutex_lock(&run->lock);
    snprintf(percent, sizeof percent, "%d", run->percent);
    snprintf(stage, sizeof stage, "%s", run->stage);
    pthread_mutex_unlock(&run->lock);
    snprintf(attempt, sizeof attempt, "%d", run->job.attempts);
    snprintf(now_text, sizeof now_text, "%lld", (long long)time(NULL));
    const char *fields[] = {"status",  "progress",  "stage",   "worker",
                            "attempt", "heartbeat", "updated", "error"};
    const char *values[] = {status,  percent,  stage,    w->cfg->worker_id,
                            attempt, now_text, now_text, error};
    return queue_pipe_live_set(p, w->cfg->redis_prefix, run->job.id, error ? 8 : 7, fields, values,
                               ttl_s);
}

/* Appends a job event to p (the JSON is copied into the pipe at once).
 * Returns the PUBLISH's index or -1. */
static int pipe_event(struct queue_pipe *p, struct run *run, const char *event, const char *status,
                      int percent, const char *stage, const char *error)
{
    struct worker *w = run->w;
    struct job_event ev = run_event(run, event, status, percent, stage, error);
    char *json = job_event_json(&ev); /* cJSON_free */
    if (!json)
        return -1;
    int at = queue_pipe_publish(p, w->cfg->redis_prefix, json);
    cJSON_free(json);
    return at;
}

/* pipe_event with the run's latest progress. */
static int pipe_event_now(struct queue_pipe *p, struct run *run, const char *event,
                          const char *status, const char *error)
{
    char stage[128];
    int percent;
    pthread_mutex_lock(&run->lock);
    percent = run->percent;
    snprintf(stage, sizeof stage, "%s", run->stage);
    pthread_mutex_unlock(&run->lock);
    return pipe_event(p, run, event, status, percent, stage, error);
}

/* Stages the job entered that no event has shown yet (heartbeat.c
 * publishes them while the job runs; the rest go out with the end). */
struct stage_list {
    int n;
    int percent[RUN_STAGES_MAX];
    char stage[RUN_STAGES_MAX][128];
};

/* Moves the run's entered stages into out (the run's list is emptied). */
static void take_stages(struct run *run, struct stage_list *out)
{
    pthread_mutex_lock(&run->lock);
    out->n = run->nentered;
    for (int i = 0; i < out->n; i++) {
        out->percent[i] = run->entered[i].percent;
        snprintf(out->stage[i], sizeof out->stage[i], "%s", run->entered[i].stage);
    }
    run->nentered = 0;
    pthread_mutex_unlock(&run->lock);
}

static void pipe_stages(struct queue_pipe *p, struct run *run, const struct stage_list *stages)
{
    for (int i = 0; stages && i < stages->n; i++)
        pipe_event(p, run, "training.progress", "running", stages->percent[i], stages->stage[i],
                   NULL);
}

/* Stages of one family share the text before ':' ("fitting: tree 3/100");
 * a new family is a new stage for the events. */
static int same_stage_family(const char *a, const char *b)
{
    size_t la = strcspn(a, ":"), lb = strcspn(b, ":");
    return la == lb && strncmp(a, b, la) == 0;
}

static void set_progress(struct run *run, int percent, const char *stage)
{
    pthread_mutex_lock(&run->lock);
    if (percent >= 0)
        run->percent = percent > 100 ? 100 : percent;
    if (stage && !same_stage_family(stage, run->stage)) {
        if (run->nentered == RUN_STAGES_MAX) { /* keep the newest */
            memmove(&run->entered[0], &run->entered[1],
                    (RUN_STAGES_MAX - 1) * sizeof run->entered[0]);
            run->nentered--;
        }
        run->entered[run->nentered].percent = run->percent;
        snprintf(run->entered[run->nentered].stage, sizeof run->entered[0].stage, "%s", stage);
        run->nentered++;
    }
    if (stage)
        snprintf(run->stage, sizeof run->stage, "%s", stage);
    run->seq++;
    pthread_mutex_unlock(&run->lock);
}

/* train_ctx hooks, called on the training thread. */
static void on_progress(void *opaque, int percent, const char *stage)
{
    set_progress(opaque, percent, stage);
}

static int on_should_stop(void *opaque)
{
    struct run *run = opaque;
    return atomic_load(&run->stop);
}

/* The training thread: trains with its own PostgreSQL connection and hands
 * the outcome back through the run. */
static void *train_thread(void *arg)
{
    struct run *run = arg;
    struct worker *w = run->w;
    struct train_result result;
    char err[512] = "";
    int rc;

    train_result_init(&result);
    rc = pg_ensure(&run->pg, w->cfg->pg_dsn, w->cfg->connect_timeout_ms, "enms-training", err,
                   sizeof err);
    if (rc == ENMS_OK) {
        struct train_ctx ctx = {.cfg = w->cfg,
                                .pg = run->pg,
                                .progress = on_progress,
                                .should_stop = on_should_stop,
                                .opaque = run};
        rc = train_run(&run->job, &ctx, &result, err, sizeof err);
    }
    pthread_mutex_lock(&run->lock);
    run->rc = rc;
    run->result = result; /* ownership moves to the run */
    snprintf(run->err, sizeof run->err, "%s", err);
    run->done = 1;
    pthread_cond_broadcast(&run->cond);
    pthread_mutex_unlock(&run->lock);
    return NULL;
}

/* Keeps the lease while a final write is retried. Returns 0 while it is
 * ours, ENMS_ECONFLICT once it is lost (or unrenewable for a whole TTL). */
static int keep_lease(struct run *run, long long *lease_ok_ms, long long *next_ms)
{
    struct worker *w = run->w;
    char err[512];
    long long now = runner_now_ms();
    if (now < *next_ms)
        return ENMS_OK;
    *next_ms = now + w->cfg->heartbeat_interval_s * 1000LL;
    if (runner_redis(w, err, sizeof err) == ENMS_OK) {
        int rc = lease_renew(w->redis, w->cfg->redis_prefix, run->job.id, w->cfg->worker_id,
                             run->job.attempts, w->cfg->heartbeat_ttl_s * 1000, err, sizeof err);
        if (rc == ENMS_OK)
            *lease_ok_ms = now;
        else if (rc == ENMS_ECONFLICT)
            return rc;
    }
    if (now - *lease_ok_ms >= w->cfg->heartbeat_ttl_s * 1000LL)
        return ENMS_ECONFLICT;
    return ENMS_OK;
}

/* One PostgreSQL write of the final status. */
typedef int (*final_write_fn)(struct run *run, const void *arg, char *err, size_t errlen);

/* Runs write until it gives an answer other than a transient error,
 * reconnecting and backing off (0.2 s doubling to 5 s, with jitter) for as
 * long as the lease can be kept: a finished result is not thrown away
 * because PostgreSQL blinked. done_status names the status the write
 * leaves the job in; when a retry meets ENMS_ECONFLICT with the job in that
 * status under our attempt, the earlier try did commit (the connection
 * died on the COMMIT's answer) and counts as success. */
static int final_write(struct run *run, final_write_fn write, const void *arg,
                       const char *done_status, char *err, size_t errlen)
{
    struct worker *w = run->w;
    long step_ms = BACKOFF_FIRST_MS;
    long long lease_ok_ms = runner_now_ms(), next_ms = 0;
    int retried = 0;

    for (;;) {
        int rc = runner_pg(w, err, errlen);
        if (rc == ENMS_OK)
            rc = write(run, arg, err, errlen);
        if (rc == ENMS_ECONFLICT && retried && done_status) {
            char status[JOBS_STATUS_SIZE] = "", ebuf[256];
            int attempts = 0;
            if (jobs_status(w->pg, run->job.id, status, &attempts, ebuf, sizeof ebuf) == ENMS_OK &&
                strcmp(status, done_status) == 0 && attempts == run->job.attempts)
                return ENMS_OK;
        }
        if (rc != ENMS_EDB && rc != ENMS_EREDIS)
            return rc;
        long delay = backoff_next(w, &step_ms);
        log_event(LOG_WARN, run->job.id, "final write failed: %s (retrying in %ld ms)", err, delay);
        retried = 1;
        for (long slept = 0; slept < delay; slept += HEARTBEAT_TICK_MS) {
            if (keep_lease(run, &lease_ok_ms, &next_ms) != ENMS_OK)
                return enms_fail(err, errlen, ENMS_ECONFLICT,
                                 "lease lost while retrying the final write");
            sleep_ms(delay - slept < HEARTBEAT_TICK_MS ? delay - slept : HEARTBEAT_TICK_MS);
        }
    }
}

/* Rolls back after a failure; the connection may be dead, which is fine. */
static void rollback(PGconn *pg)
{
    PGresult *res = PQexec(pg, "ROLLBACK");
    PQclear(res);
}

/* Text of a time for a bound to_timestamp($n::bigint), or NULL when unknown. */
static const char *epoch_param(time_t t, char *buf, size_t len)
{
    if (t <= 0)
        return NULL;
    snprintf(buf, len, "%lld", (long long)t);
    return buf;
}

/* Text of a finite double for a bound parameter, or NULL. */
static const char *double_param(double v, char *buf, size_t len)
{
    if (!isfinite(v))
        return NULL;
    snprintf(buf, len, "%.17g", v);
    return buf;
}

/* Adds a number or null to o; 0 or -1 when out of memory. */
static int json_num(cJSON *o, const char *key, double v)
{
    return (isfinite(v) ? cJSON_AddNumberToObject(o, key, v) : cJSON_AddNullToObject(o, key)) ? 0
                                                                                              : -1;
}

/* The activation decision for a new version, by cfg->activation_policy:
 * "better" activates when no version is active, or when the new one scores
 * better (lower being better); "always" activates every new version;
 * "manual" never does (an operator activates through the API), and the
 * job's result says so. The score of both comes from the same holdout when training
 * compared them (baseline, and only if the version it compared with is
 * still the active one); otherwise from the holdout score each version
 * stored in its metrics when it was trained. An active version without a
 * stored score cannot be compared and is replaced. Writes the
 * "performance_improvement" block into the job's training_metrics and, when
 * activating, swaps the active flag (old off first: uq_model_versions_active). */
static int activate_version(struct run *run, const char *version_id, char *err, size_t errlen)
{
    PGconn *pg = run->w->pg;
    const struct train_result *res = &run->result;
    PGresult *q = NULL;
    cJSON *pi = NULL;
    char *pi_text = NULL; /* cJSON_free */
    int rc = ENMS_OK;
    const char *aparams[] = {run->job.machine_id, run->job.model_type, version_id};

    q = pg_exec(pg, PGRES_TUPLES_OK,
                "SELECT id::text, version, (metrics->>'holdout_score')::float8 FROM model_versions "
                "WHERE machine_id = $1::uuid AND model_type = $2 AND is_active "
                "AND id <> $3::uuid FOR UPDATE",
                3, aparams, err, errlen);
    if (!q)
        return ENMS_EDB;
    int has_active = PQntuples(q) == 1;
    double prev = NAN, fresh = res->holdout_score;
    const char *basis = "none active";
    if (has_active) {
        if (res->compared_version_id[0] &&
            strcmp(res->compared_version_id, PQgetvalue(q, 0, 0)) == 0 &&
            isfinite(res->compared_previous_score) && isfinite(res->compared_new_score)) {
            prev = res->compared_previous_score;
            fresh = res->compared_new_score;
            basis = "same holdout";
        } else {
            prev = PQgetisnull(q, 0, 2) ? NAN : strtod(PQgetvalue(q, 0, 2), NULL);
            basis = "stored holdout scores";
        }
    }
    const char *policy = run->w->cfg->activation_policy;
    const char *policy_text = "activate when better or none active";
    int activate = !has_active || !isfinite(prev) || (isfinite(fresh) && fresh < prev);
    if (strcmp(policy, "always") == 0) {
        policy_text = "always activate the new version";
        activate = 1;
    } else if (strcmp(policy, "manual") == 0) {
        policy_text = "manual: never activated automatically";
        activate = 0;
    }
    if (!(pi = cJSON_CreateObject()) ||
        !(has_active
              ? cJSON_AddNumberToObject(pi, "previous_version", strtod(PQgetvalue(q, 0, 1), NULL))
              : cJSON_AddNullToObject(pi, "previous_version")) ||
        !(has_active ? cJSON_AddStringToObject(pi, "previous_version_id", PQgetvalue(q, 0, 0))
                     : cJSON_AddNullToObject(pi, "previous_version_id")) ||
        json_num(pi, "previous_score", prev) || json_num(pi, "new_score", fresh) ||
        json_num(pi, "improvement", isfinite(prev) && isfinite(fresh) ? prev - fresh : NAN) ||
        !cJSON_AddStringToObject(pi, "basis", basis) ||
        !cJSON_AddStringToObject(pi, "policy", policy_text) ||
        !cJSON_AddStringToObject(pi, "activation_policy", policy[0] ? policy : "better") ||
        !cJSON_AddBoolToObject(pi, "activated", activate) ||
        !(pi_text = cJSON_PrintUnformatted(pi))) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    const char *jparams[] = {run->job.id, pi_text};
    PGresult *u = pg_exec(pg, PGRES_COMMAND_OK,
                          "UPDATE model_training_history SET training_metrics = training_metrics "
                          "|| jsonb_build_object('performance_improvement', $2::jsonb) "
                          "WHERE id = $1::uuid",
                          2, jparams, err, errlen);
    if (!u) {
        rc = ENMS_EDB;
        goto done;
    }
    PQclear(u);
    if (!activate)
        goto done;
    if (has_active) {
        const char *dparams[] = {PQgetvalue(q, 0, 0)};
        u = pg_exec(pg, PGRES_COMMAND_OK,
                    "UPDATE model_versions SET is_active = false WHERE id = $1::uuid", 1, dparams,
                    err, errlen);
        if (!u) {
            rc = ENMS_EDB;
            goto done;
        }
        PQclear(u);
    }
    const char *nparams[] = {version_id};
    u = pg_exec(pg, PGRES_COMMAND_OK,
                "UPDATE model_versions SET is_active = true, activated_at = now() "
                "WHERE id = $1::uuid",
                1, nparams, err, errlen);
    if (!u) {
        rc = ENMS_EDB;
        goto done;
    }
    PQclear(u);
done:
    cJSON_free(pi_text);
    cJSON_Delete(pi);
    PQclear(q);
    return rc;
}

/* The new version's evaluation as a model_performance_metrics row: the
 * named columns come from the uniform keys of validation_metrics_json. */
static int insert_performance(struct run *run, const char *version_id, const char *version,
                              char *err, size_t errlen)
{
    const struct train_result *res = &run->result;
    char start[24], end[24], count[16], completeness[40];
    if (res->eval_samples >= 0)
        snprintf(count, sizeof count, "%d", res->eval_samples);
    const char *params[] = {
        version_id,
        run->job.model_type,
        run->job.machine_id,
        version,
        epoch_param(res->eval_start, start, sizeof start),
        epoch_param(res->eval_end, end, sizeof end),
        res->eval_samples >= 0 ? count : NULL,
        res->validation_metrics_json ? res->validation_metrics_json : "{}",
        double_param(res->data_completeness * 100, completeness, sizeof completeness),
        run->w->cfg->worker_id,
    };
    PGresult *q =
        pg_exec(run->w->pg, PGRES_COMMAND_OK,
                "INSERT INTO model_performance_metrics (model_id, model_type, machine_id, "
                "model_version, evaluation_start, evaluation_end, sample_count, metrics, "
                "r_squared, rmse, mae, mape, precision_score, recall_score, f1_score, "
                "true_positives, false_positives, false_negatives, data_completeness, "
                "outlier_percentage, evaluation_notes, created_by) "
                "SELECT $1::uuid, $2, $3::uuid, $4::int, to_timestamp($5::bigint), "
                "to_timestamp($6::bigint), $7::int, m, (m->>'r_squared')::float8, "
                "(m->>'rmse')::float8, (m->>'mae')::float8, (m->>'mape')::float8, "
                "(m->>'precision')::float8, (m->>'recall')::float8, (m->>'f1')::float8, "
                "(m->>'true_positives')::int, (m->>'false_positives')::int, "
                "(m->>'false_negatives')::int, LEAST(GREATEST($9::float8, 0), 100), "
                "LEAST(GREATEST((m->>'outlier_percentage')::float8, 0), 100), "
                "'evaluation at training', $10 FROM (SELECT $8::jsonb AS m) AS v",
                10, params, err, errlen);
    if (!q)
        return ENMS_EDB;
    PQclear(q);
    return ENMS_OK;
}

/* completed, for an evaluate or score job: no model version. perf_record()
 * runs its own statements (drift, alerts, retrains), so it cannot share
 * the job's transaction; it goes first, after a check that this attempt
 * still holds the job, and is idempotent for a retried write
 * (evaluation_record). The A/B samples, anomalies and scoring state then
 * commit together with the completion; the anomaly alert follows. */
static int write_monitoring_completed(struct run *run, char *err, size_t errlen)
{
    struct worker *w = run->w;
    PGconn *pg = w->pg;
    const struct train_result *res = &run->result;
    char *result = NULL, ebuf[256], alert_id[40];
    int rc = jobs_heartbeat(pg, run->job.id, run->job.attempts, -1, "recording", err, errlen);
    if (rc != ENMS_OK)
        return rc;
    if (strcmp(run->job.job_kind, "evaluate") == 0) {
        redisContext *redis = runner_redis(w, ebuf, sizeof ebuf) == ENMS_OK ? w->redis : NULL;
        rc = evaluation_record(pg, redis, w->cfg, &run->job, res, &result, err, errlen);
        if (rc != ENMS_OK)
            return rc;
    }
    if ((rc = pg_command(pg, "BEGIN", err, errlen)) != ENMS_OK)
        goto done;
    if ((rc = jobs_finish(pg, run->job.id, run->job.attempts, "completed", NULL,
                          result ? result : res->metrics_json, err, errlen)) != ENMS_OK ||
        (rc = evaluation_store_samples(pg, res, err, errlen)) != ENMS_OK ||
        (strcmp(run->job.job_kind, "score") == 0 &&
         (rc = anomaly_scoring_store(pg, &run->job, res, err, errlen)) != ENMS_OK)) {
        rollback(pg);
        goto done;
    }
    if ((rc = pg_command(pg, "COMMIT", err, errlen)) != ENMS_OK)
        goto done;
    if (strcmp(run->job.job_kind, "score") == 0 &&
        anomaly_scoring_alert(pg, &run->job, res, alert_id, ebuf, sizeof ebuf) != ENMS_OK)
        log_event(LOG_WARN, run->job.id, "anomalies stored, but no alert raised: %s", ebuf);
done:
    free(result);
    return rc;
}

/* completed, with the model version and everything the trainer reported.
 * Without a model version (the probe, a fit that produced no artifact) it
 * is one statement: compare-and-set and result together, one round trip
 * and one durable commit. With one, a transaction: the compare-and-set
 * comes first and locks the row, so a stale attempt or a cancelled job
 * rolls back with nothing written; then the version, its activation and
 * its evaluation. */
static int write_completed(struct run *run, const void *arg, char *err, size_t errlen)
{
    (void)arg;
    if (run->job.job_kind[0] && strcmp(run->job.job_kind, "train") != 0)
        return write_monitoring_completed(run, err, errlen);
    PGconn *pg = run->w->pg;
    const struct train_result *res = &run->result;
    const char *id = run->job.id;
    PGresult *q = NULL;
    struct job_completion c = {.metrics_json = res->metrics_json,
                               .training_samples = res->training_samples,
                               .data_start = res->data_start,
                               .data_end = res->data_end,
                               .hyperparameters_json = res->hyperparameters_json,
                               .feature_names_json = res->feature_names,
                               .validation_metrics_json = res->validation_metrics_json};
    if (!res->artifact_json)
        return jobs_complete(pg, id, run->job.attempts, &c, err, errlen);
    int rc = pg_command(pg, "BEGIN", err, errlen);
    if (rc != ENMS_OK)
        return rc;
    rc = jobs_complete(pg, id, run->job.attempts, &c, err, errlen);
    if (rc != ENMS_OK)
        goto fail;
    const char *vparams[] = {run->job.machine_id, run->job.model_type, id, res->artifact_json,
                             res->metrics_json};
    q = pg_exec(pg, PGRES_TUPLES_OK,
                "INSERT INTO model_versions (machine_id, model_type, version, "
                "training_job_id, artifact, metrics, is_active) "
                "SELECT $1::uuid, $2, COALESCE(MAX(version), 0) + 1, $3::uuid, $4::jsonb, "
                "COALESCE($5::jsonb, '{}'), false FROM model_versions "
                "WHERE machine_id = $1::uuid AND model_type = $2 RETURNING id, version",
                5, vparams, err, errlen);
    if (!q) {
        rc = ENMS_EDB;
        goto fail;
    }
    const char *version_id = PQgetvalue(q, 0, 0), *version = PQgetvalue(q, 0, 1);
    const char *uparams[] = {id, version_id, version};
    PGresult *u = pg_exec(pg, PGRES_COMMAND_OK,
                          "UPDATE model_training_history SET result_version_id = $2::uuid, "
                          "model_version = $3::int WHERE id = $1::uuid",
                          3, uparams, err, errlen);
    if (!u) {
        rc = ENMS_EDB;
        goto fail;
    }
    PQclear(u);
    if (strcmp(run->job.model_type, "probe") != 0) {
        if ((rc = activate_version(run, version_id, err, errlen)) != ENMS_OK ||
            (rc = insert_performance(run, version_id, version, err, errlen)) != ENMS_OK)
            goto fail;
    }
    rc = pg_command(pg, "COMMIT", err, errlen);
    PQclear(q);
    return rc;
fail:
    PQclear(q);
    rollback(pg);
    return rc;
}

static int write_failed(struct run *run, const void *arg, char *err, size_t errlen)
{
    return jobs_finish(run->w->pg, run->job.id, run->job.attempts, "failed", arg, NULL, err,
                       errlen);
}

static int write_released(struct run *run, const void *arg, char *err, size_t errlen)
{
    return jobs_release(run->w->pg, run->job.id, run->job.attempts, arg, err, errlen);
}

/* A cancel seen only through the Redis flag (an operator who set just the
 * flag) is made real in PostgreSQL too; when the API already cancelled the
 * job this answers ENMS_ECONFLICT, which is the expected case. */
static int write_cancelled(struct run *run, const void *arg, char *err, size_t errlen)
{
    (void)arg;
    char prev[JOBS_STATUS_SIZE];
    int rc = jobs_cancel(run->w->pg, run->job.id, prev, err, errlen);
    return rc == ENMS_ECONFLICT ? ENMS_OK : rc;
}

/* Appends the Redis half of settling (see redis_settle) to p; *release
 * and *ack receive the indexes of the two writes that decide a retry. */
static void pipe_settle(struct queue_pipe *p, struct run *run, const char *status,
                        const char *event, const char *error, const char *outcome,
                        const struct stage_list *stages, int *release, int *ack)
{
    struct worker *w = run->w;
    const char *prefix = w->cfg->redis_prefix;
    const char *id = run->job.id;
    if (status)
        pipe_stages(p, run, stages);
    *release = queue_pipe_lease_release(p, prefix, id, w->cfg->worker_id, run->job.attempts);
    *ack = queue_pipe_ack(p, prefix, w->cfg->worker_id, id);
    if (status) {
        pipe_live(p, run, status, error, w->cfg->job_done_ttl_s);
        pipe_event_now(p, run, event, status, error);
    }
    if (outcome)
        worker_stats_pipe_count(p, prefix, w->me.host, run->job.model_type, outcome);
    registry_pipe_state(p, &w->me, atomic_load(&w->shutdown) ? "stopping" : "idle", NULL);
}

/* The Redis half of settling a job, after PostgreSQL, in one round trip:
 * stage events not yet shown, lease check-and-delete, processing list,
 * live hash, the final event, the outcome counter and the registry back
 * to idle. Retried a few times; what still fails is left to
 * runner_recover (w->dirty) and housekeeping, since the record is already
 * right. status/event NULL: leave the live hash and events alone (the job
 * is someone else's now). outcome NULL: count nothing. A retry after a
 * connection failure may repeat an event or a count; the lease, list and
 * hash writes are idempotent. */
static void redis_settle(struct run *run, const char *status, const char *event, const char *error,
                         const char *outcome, const struct stage_list *stages)
{
    struct worker *w = run->w;
    const char *id = run->job.id;
    long step_ms = BACKOFF_FIRST_MS;
    char err[512] = "";
    struct queue_pipe p;
    int release, ack;

    for (int tries = 0; tries < REDIS_CLEANUP_TRIES; tries++) {
        if (tries > 0)
            sleep_ms(backoff_next(w, &step_ms));
        if (runner_redis(w, err, sizeof err) != ENMS_OK)
            continue;
        queue_pipe_init(&p, w->redis);
        pipe_settle(&p, run, status, event, error, outcome, stages, &release, &ack);
        if (queue_pipe_run(&p, err, sizeof err) == ENMS_OK)
            return;
        /* Only the lease and the list decide whether to try again; a
         * failed event, hash or counter is a courtesy lost, logged. */
        if (!queue_pipe_failed(&p, release) && !queue_pipe_failed(&p, ack)) {
            log_event(LOG_WARN, id, "settled, but a redis write failed: %s", err);
            return;
        }
    }
    log_event(LOG_WARN, id, "settled in postgresql, but redis clean-up failed: %s", err);
    w->dirty = 1;
}

/* Hands the job back: pending in PostgreSQL, then onto its queue, then out
 * of our processing list, so it is never in no list at all. */
static void settle_release(struct run *run, const char *reason, const struct stage_list *stages)
{
    struct worker *w = run->w;
    const char *id = run->job.id;
    char err[512];
    struct queue_pipe p;
    int rc = final_write(run, write_released, reason, "pending", err, sizeof err);
    if (rc != ENMS_OK) {
        log_event(LOG_INFO, id, "could not hand back attempt %d (%s); abandoned", run->job.attempts,
                  err);
        redis_settle(run, NULL, NULL, NULL, NULL, NULL);
        return;
    }
    set_progress(run, 0, reason);
    if (runner_redis(w, err, sizeof err) != ENMS_OK ||
        queue_push(w->redis, w->cfg->redis_prefix, run->job.queue_name, id, err, sizeof err) !=
            ENMS_OK) {
        /* Pending in PostgreSQL and still in our list: runner_recover
         * pushes it once Redis answers. */
        log_event(LOG_WARN, id, "released but not pushed back: %s", err);
        w->dirty = 1;
        return;
    }
    log_event(LOG_INFO, id, "attempt %d handed back to queue %s: %s", run->job.attempts,
              run->job.queue_name, reason);
    /* A rare path: the stage events and the live hash go in their own
     * round trip, before the requeued event, as they always did. */
    queue_pipe_init(&p, w->redis);
    pipe_stages(&p, run, stages);
    pipe_live(&p, run, "pending", NULL, QUEUE_JOB_TTL_S);
    if (queue_pipe_run(&p, err, sizeof err) != ENMS_OK)
        log_event(LOG_WARN, id, "cannot update the live hash: %s", err);
    redis_settle(run, NULL, NULL, NULL, NULL, NULL);
    runner_publish(run, "training.requeued", "pending", NULL);
}

/* A job whose every attempt hung ends like one whose workers kept dying
 * (housekeeping.c): a training_failed alert and the dead-letter list, where
 * an operator finds it for enmsctl requeue. Logged, not returned: the
 * record is already failed. */
static void dead_letter_stuck(struct run *run, const char *msg)
{
    struct worker *w = run->w;
    char err[512];
    if (runner_pg(w, err, sizeof err) != ENMS_OK ||
        jobs_alert_failed(w->pg, run->job.id, msg, err, sizeof err) != ENMS_OK)
        log_event(LOG_ERROR, run->job.id, "could not record the alert: %s", err);
    if (runner_redis(w, err, sizeof err) != ENMS_OK ||
        dead_letter_push(w->redis, w->cfg->redis_prefix, run->job.id, err, sizeof err) != ENMS_OK)
        log_event(LOG_ERROR, run->job.id, "failed but not dead-lettered: %s", err);
    else
        log_event(LOG_INFO, run->job.id, "dead-lettered: %s", msg);
}

/* Decides how the job ends from what the training thread returned (or did
 * not) and why it was stopped. A stop reason beats the training's own
 * answer, except that a result in hand is always offered to the
 * compare-and-set, which alone decides whether it may still count. */
static enum outcome decide(struct run *run, int finished, char *msg, size_t msglen)
{
    const struct enms_config *cfg = run->w->cfg;
    int reason = atomic_load(&run->reason);
    if (finished && run->rc == ENMS_OK)
        return OUT_COMPLETE;
    switch (reason) {
    case STOP_CANCEL:
        return OUT_CANCELLED;
    case STOP_TIMEOUT:
        snprintf(msg, msglen, "timed out after %d s", cfg->job_timeout_s);
        return OUT_FAIL;
    case STOP_SHUTDOWN:
        snprintf(msg, msglen, "worker shutting down");
        return OUT_RELEASE;
    case STOP_LEASE_LOST:
        return OUT_ABANDON;
    case STOP_STUCK:
        /* A hang is likely to come back, so each one uses up an attempt;
         * the last one is failed and dead-lettered (settle). */
        if (run->job.attempts < cfg->max_attempts) {
            snprintf(msg, msglen, "no progress for %d s", cfg->stuck_progress_s);
            return OUT_RELEASE;
        }
        snprintf(msg, msglen, "failed after %d attempt%s: no progress for %d s", run->job.attempts,
                 run->job.attempts == 1 ? "" : "s", cfg->stuck_progress_s);
        return OUT_FAIL;
    default:
        break;
    }
    if ((run->rc == ENMS_EDB || run->rc == ENMS_EREDIS) && run->job.attempts < cfg->max_attempts) {
        snprintf(msg, msglen, "transient error: %s", run->err);
        return OUT_RELEASE;
    }
    if (run->rc == ENMS_EDB || run->rc == ENMS_EREDIS)
        snprintf(msg, msglen, "gave up after %d attempts: %s", run->job.attempts, run->err);
    else if (run->rc == ENMS_ESTOPPED)
        snprintf(msg, msglen, "training stopped without being asked to");
    else
        snprintf(msg, msglen, "%s", run->err[0] ? run->err : enms_err_name(run->rc));
    return OUT_FAIL;
}

/* The rest of a completion once PostgreSQL answered the compare-and-set
 * with rc (err its message): Redis settled as completed, or, for a stale
 * attempt or a write that could not be made, as lost. */
static void settle_completed(struct run *run, int rc, const char *err,
                             const struct stage_list *stages)
{
    const char *id = run->job.id;
    int attempt = run->job.attempts;
    if (rc == ENMS_ECONFLICT) {
        log_event(LOG_INFO, id, "job %s attempt %d is stale; result dropped (%s)", id, attempt,
                  err);
        redis_settle(run, NULL, NULL, NULL, WORKER_STATS_LOST, NULL);
        return;
    }
    if (rc != ENMS_OK) {
        log_event(LOG_ERROR, id, "cannot record the completion: %s", err);
        redis_settle(run, NULL, NULL, NULL, WORKER_STATS_LOST, NULL);
        return;
    }
    set_progress(run, 100, "completed");
    log_event(LOG_INFO, id, "attempt %d completed", attempt);
    redis_settle(run, "completed", "training.completed", NULL, WORKER_STATS_COMPLETED, stages);
}

/* Writes the end of the job: PostgreSQL first, then Redis. */
static void settle(struct run *run, int finished)
{
    const char *id = run->job.id;
    int attempt = run->job.attempts;
    char msg[600], err[512];
    struct stage_list stages = {0};
    int rc;

    /* Stages the watch did not publish go out with the end, before the
     * set_progress calls below add the final stage (which the end's own
     * event shows). A thawed zombie's stages are not shown at all. */
    if (atomic_load(&run->reason) != STOP_LEASE_LOST)
        take_stages(run, &stages);
    switch (decide(run, finished, msg, sizeof msg)) {
    case OUT_COMPLETE:
        rc = final_write(run, write_completed, NULL, "completed", err, sizeof err);
        settle_completed(run, rc, err, &stages);
        return;
    case OUT_FAIL:
        rc = final_write(run, write_failed, msg, "failed", err, sizeof err);
        if (rc != ENMS_OK) {
            log_event(LOG_INFO, id, "job %s attempt %d is stale; failure dropped (%s)", id, attempt,
                      err);
            redis_settle(run, NULL, NULL, NULL, WORKER_STATS_LOST, NULL);
            return;
        }
        set_progress(run, -1, "failed");
        log_event(LOG_INFO, id, "attempt %d failed: %s", attempt, msg);
        redis_settle(run, "failed", "training.failed", msg, WORKER_STATS_FAILED, &stages);
        if (atomic_load(&run->reason) == STOP_STUCK)
            dead_letter_stuck(run, msg);
        return;
    case OUT_CANCELLED:
        rc = final_write(run, write_cancelled, NULL, NULL, err, sizeof err);
        if (rc != ENMS_OK)
            log_event(LOG_WARN, id, "cannot confirm the cancel: %s", err);
        set_progress(run, -1, "cancelled");
        log_event(LOG_INFO, id, "attempt %d stopped: cancelled", attempt);
        redis_settle(run, "cancelled", "training.cancelled", "cancelled by request",
                     WORKER_STATS_CANCELLED, &stages);
        return;
    case OUT_RELEASE:
        settle_release(run, msg, &stages);
        return;
    case OUT_ABANDON:
        log_event(LOG_INFO, id, "attempt %d no longer holds the job; abandoned", attempt);
        redis_settle(run, NULL, NULL, NULL, WORKER_STATS_LOST, NULL);
        return;
    }
}

/* Frees a run whose training thread has been joined (or never started). */
static void run_free(struct run *run)
{
    if (!run)
        return;
    train_result_clear(&run->result);
    job_record_clear(&run->job);
    pthread_cond_destroy(&run->cond);
    pthread_mutex_destroy(&run->lock);
    free(run);
}

/* Allocates a run for w with its lock and monotonic condition variable.
 * NULL when out of memory; freed by run_free. */
static struct run *run_new(struct worker *w)
{
    struct run *run = calloc(1, sizeof *run);
    pthread_condattr_t attr;
    if (!run)
        return NULL;
    run->w = w;
    pthread_mutex_init(&run->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&run->cond, &attr);
    pthread_condattr_destroy(&attr);
    return run;
}

/* The Redis half of a job's start, in one round trip: the "started"
 * counter, the lease (fencing: "<worker>|<attempt>"), the live hash, the
 * registry (busy with this job) and the training.started event. The
 * "starting" stage is not published again as a training.progress event:
 * the started event carries it. 0, or ENMS_EREDIS when the lease may not
 * have been taken (the caller hands the job back); the other writes are a
 * courtesy and only logged. */
static int redis_start(struct run *run, char *err, size_t errlen)
{
    struct worker *w = run->w;
    const struct enms_config *cfg = w->cfg;
    struct queue_pipe p;
    char warn[512];
    int rc = runner_redis(w, err, errlen);
    if (rc != ENMS_OK)
        return rc;
    pthread_mutex_lock(&run->lock);
    run->nentered = 0;
    pthread_mutex_unlock(&run->lock);
    queue_pipe_init(&p, w->redis);
    worker_stats_pipe_count(&p, cfg->redis_prefix, w->me.host, run->job.model_type,
                            WORKER_STATS_STARTED);
    int lease = queue_pipe_lease_acquire(&p, cfg->redis_prefix, run->job.id, cfg->worker_id,
                                         run->job.attempts, cfg->heartbeat_ttl_s * 1000);
    pipe_live(&p, run, "running", NULL, QUEUE_JOB_TTL_S);
    registry_pipe_state(&p, &w->me, "busy", run->job.id);
    pipe_event_now(&p, run, "training.started", "running", NULL);
    if (queue_pipe_run(&p, warn, sizeof warn) == ENMS_OK)
        return ENMS_OK;
    if (queue_pipe_failed(&p, lease))
        return enms_fail(err, errlen, ENMS_EREDIS, "%s", warn);
    log_event(LOG_WARN, run->job.id, "started, but a redis write failed: %s", warn);
    return ENMS_OK;
}

/* Gives a claimed job back to the queue untouched (jobs_start could not
 * even be asked): push first, then drop it from our list. */
static void hand_back_unstarted(struct worker *w, const char *job_id)
{
    char err[512];
    if (runner_redis(w, err, sizeof err) != ENMS_OK ||
        queue_push(w->redis, w->cfg->redis_prefix, QUEUE_DEFAULT, job_id, err, sizeof err) !=
            ENMS_OK ||
        queue_ack(w->redis, w->cfg->redis_prefix, w->cfg->worker_id, job_id, err, sizeof err) !=
            ENMS_OK) {
        log_event(LOG_WARN, job_id, "cannot hand the job back: %s", err);
        w->dirty = 1;
    }
}

/* The jobs of one claim (runner_run_batch). Waiting: started in PostgreSQL
 * together, not run yet, in claim order (waiting[next..nwaiting)). Held:
 * finished with a result whose completion is one statement, in the order
 * they finished, each keeping its lease and its place in the processing
 * list until flush_completions has written it. */
struct batch {
    struct run *waiting[RUNNER_BATCH_MAX];
    int next, nwaiting;
    int n;               /* held */
    long long oldest_ms; /* runner_now_ms() when the first held one finished */
    struct run *run[RUNNER_BATCH_MAX];
    struct stage_list stages[RUNNER_BATCH_MAX];
};

/* Whether the job's completion is the single jobs_complete statement (no
 * model version to insert, not a monitoring job), so it can join others. */
static int completes_in_one_statement(const struct run *run)
{
    return (!run->job.job_kind[0] || strcmp(run->job.job_kind, "train") == 0) &&
           !run->result.artifact_json;
}

/* settle_completed for the held completions once jobs_complete_batch has
 * answered, with the Redis halves sent in one round trip: every job's
 * pipeline is appended to the connection before the first reply is read.
 * A job whose lease release or LREM failed, and every job after a lost
 * connection (its context is replaced by the retry), is settled again on
 * its own by redis_settle. */
static void settle_completed_together(struct worker *w, struct batch *pc,
                                      const struct job_done *done)
{
    struct queue_pipe pipes[RUNNER_BATCH_MAX];
    int release[RUNNER_BATCH_MAX], ack[RUNNER_BATCH_MAX], again[RUNNER_BATCH_MAX] = {0};
    char err[512];
    int sent = runner_redis(w, err, sizeof err) == ENMS_OK;
    for (int i = 0; i < pc->n; i++) {
        struct run *run = pc->run[i];
        if (done[i].completed) {
            set_progress(run, 100, "completed");
            log_event(LOG_INFO, run->job.id, "attempt %d completed", run->job.attempts);
        } else {
            log_event(LOG_INFO, run->job.id,
                      "job %s attempt %d is stale; result dropped (no longer running as it)",
                      run->job.id, run->job.attempts);
        }
        if (!sent)
            continue;
        queue_pipe_init(&pipes[i], w->redis);
        if (done[i].completed)
            pipe_settle(&pipes[i], run, "completed", "training.completed", NULL,
                        WORKER_STATS_COMPLETED, &pc->stages[i], &release[i], &ack[i]);
        else
            pipe_settle(&pipes[i], run, NULL, NULL, NULL, WORKER_STATS_LOST, NULL, &release[i],
                        &ack[i]);
    }
    for (int i = 0, lost = !sent; i < pc->n; i++) {
        if (!lost && queue_pipe_run(&pipes[i], err, sizeof err) != ENMS_OK) {
            lost = w->redis->err != 0;
            again[i] = lost || queue_pipe_failed(&pipes[i], release[i]) ||
                       queue_pipe_failed(&pipes[i], ack[i]);
            if (!again[i])
                log_event(LOG_WARN, pc->run[i]->job.id, "settled, but a redis write failed: %s",
                          err);
        }
        if (lost)
            again[i] = 1;
    }
    for (int i = 0; i < pc->n; i++)
        if (again[i]) {
            if (done[i].completed)
                redis_settle(pc->run[i], "completed", "training.completed", NULL,
                             WORKER_STATS_COMPLETED, &pc->stages[i]);
            else
                redis_settle(pc->run[i], NULL, NULL, NULL, WORKER_STATS_LOST, NULL);
        }
}

/* Writes the held completions in one statement, then settles each in
 * Redis. When that statement fails: with may_block, each is written on its
 * own with final_write's retries (the path of an unbatched job); without
 * (called while another job trains, whose lease must keep being renewed),
 * they stay held for a later call. */
static void flush_completions(struct worker *w, struct batch *pc, int may_block)
{
    struct job_done done[RUNNER_BATCH_MAX];
    char err[512];
    if (pc->n == 0)
        return;
    for (int i = 0; i < pc->n; i++) {
        const struct run *run = pc->run[i];
        const struct train_result *res = &run->result;
        done[i] = (struct job_done){.job_id = run->job.id,
                                    .attempt = run->job.attempts,
                                    .c = {.metrics_json = res->metrics_json,
                                          .training_samples = res->training_samples,
                                          .data_start = res->data_start,
                                          .data_end = res->data_end,
                                          .hyperparameters_json = res->hyperparameters_json,
                                          .feature_names_json = res->feature_names,
                                          .validation_metrics_json = res->validation_metrics_json}};
    }
    int rc = runner_pg(w, err, sizeof err);
    if (rc == ENMS_OK)
        rc = jobs_complete_batch(w->pg, done, pc->n, err, sizeof err);
    if (rc != ENMS_OK && !may_block) {
        log_warn("%d completions not written yet: %s", pc->n, err);
        return;
    }
    if (rc != ENMS_OK) {
        log_warn("%d completions written one at a time: %s", pc->n, err);
        for (int i = 0; i < pc->n; i++) {
            int one = final_write(pc->run[i], write_completed, NULL, "completed", err, sizeof err);
            settle_completed(pc->run[i], one, err, &pc->stages[i]);
        }
    } else {
        settle_completed_together(w, pc, done);
    }
    for (int i = 0; i < pc->n; i++) {
        run_free(pc->run[i]);
        pc->run[i] = NULL;
    }
    pc->n = 0;
}

/* Gives a started job that was never run back to its queue: the attempt
 * undone in PostgreSQL (jobs_unstart), then pushed and dropped from our
 * list, so it is in a list at every moment. When PostgreSQL cannot undo it
 * (down), it is released like an interrupted attempt. Frees run. */
static void hand_back_waiting(struct run *run, const char *why)
{
    struct worker *w = run->w;
    char err[512];
    int rc = runner_pg(w, err, sizeof err);
    if (rc == ENMS_OK)
        rc = jobs_unstart(w->pg, run->job.id, run->job.attempts, w->cfg->worker_id, why, err,
                          sizeof err);
    if (rc == ENMS_OK) {
        log_event(LOG_INFO, run->job.id, "handed back unrun: %s", why);
        hand_back_unstarted(w, run->job.id);
    } else if (rc == ENMS_ECONFLICT) {
        /* Cancelled while it waited (or no longer this attempt's): not ours. */
        log_event(LOG_INFO, run->job.id, "not run: %s", err);
        if (runner_redis(w, err, sizeof err) != ENMS_OK ||
            queue_ack(w->redis, w->cfg->redis_prefix, w->cfg->worker_id, run->job.id, err,
                      sizeof err) != ENMS_OK)
            w->dirty = 1;
    } else {
        settle_release(run, why, NULL);
    }
    run_free(run);
}

/* Hands back every job of the batch still waiting. */
static void hand_back_batch(struct batch *b, const char *why)
{
    while (b->next < b->nwaiting) {
        struct run *run = b->waiting[b->next];
        b->waiting[b->next++] = NULL;
        hand_back_waiting(run, why);
    }
}

/* heartbeat_watch's hook for a job of a batch that trains past its first
 * tick: the batch was claimed on the promise of short jobs, so the jobs
 * still waiting go back to the queue for other workers, and the
 * completions held back by the earlier ones are written now rather than
 * wait for this one. */
static void flush_on_slow(struct run *run)
{
    struct worker *w = run->w;
    struct queue_pipe p;
    char err[512];
    hand_back_batch(run->batch, "handed back: a job before it in the worker's batch ran long");
    flush_completions(w, run->batch, 0);
    /* Settling them set the registry to idle, but this job still runs. */
    if (runner_redis(w, err, sizeof err) != ENMS_OK)
        return;
    queue_pipe_init(&p, w->redis);
    registry_pipe_state(&p, &w->me, "busy", run->job.id);
    if (queue_pipe_run(&p, err, sizeof err) != ENMS_OK)
        log_event(LOG_WARN, run->job.id, "cannot mark the worker busy: %s", err);
}

/* Folds one job's time (start to end, in microseconds) into the worker's
 * running estimate: up at once, down slowly, so one slow job makes the
 * next claims single again (runner_batch_size). */
static void note_job_time(struct worker *w, long long us)
{
    if (us < 1)
        us = 1;
    if (w->job_avg_us <= 0 || us > w->job_avg_us)
        w->job_avg_us = us;
    else
        w->job_avg_us = (7 * w->job_avg_us + us) / 8;
}

int runner_batch_size(const struct worker *w)
{
    if (w->job_avg_us <= 0)
        return 1; /* nothing measured yet */
    long long k = RUNNER_BATCH_BUDGET_US / w->job_avg_us;
    return k < 1 ? 1 : k > RUNNER_BATCH_MAX ? RUNNER_BATCH_MAX : (int)k;
}

/* Runs a started job (run->job filled by jobs_start): lease and live
 * state, the training thread and its watch, then the end. When pending is
 * not NULL and the job finished with a result whose completion is one
 * statement, the run is held there for flush_completions instead of being
 * settled. Owns run: frees it, holds it in pending, or leaves it to a
 * stuck training thread. */
static void run_started(struct run *run, struct batch *pending)
{
    struct worker *w = run->w;
    const char *job_id = run->job.id;
    pthread_t thread;
    char err[512];
    struct timespec t0, t1;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    run->started_ms = runner_now_ms();
    set_progress(run, 0, "starting");
    log_event(LOG_INFO, job_id, "attempt %d started (%s for machine %s)", run->job.attempts,
              run->job.model_type, run->job.machine_id);

    if (redis_start(run, err, sizeof err) != ENMS_OK) {
        log_event(LOG_WARN, job_id, "cannot take the lease: %s", err);
        settle_release(run, "worker could not take the lease", NULL);
        run_free(run);
        return;
    }

    /* The training connection moves to the run and comes back after the
     * join: no two threads ever hold it. */
    run->pg = w->train_pg;
    w->train_pg = NULL;
    if (pthread_create(&thread, NULL, train_thread, run) != 0) {
        w->train_pg = run->pg;
        run->pg = NULL;
        log_event(LOG_ERROR, job_id, "cannot start the training thread");
        settle_release(run, "worker could not start a training thread", NULL);
        run_free(run);
        return;
    }
    if (pending && (pending->n > 0 || pending->next < pending->nwaiting)) {
        run->batch = pending;
        run->on_slow = flush_on_slow;
    }
    heartbeat_watch(run);
    run->on_slow = NULL;
    pthread_mutex_lock(&run->lock);
    int finished = run->done;
    pthread_mutex_unlock(&run->lock);
    if (finished) {
        pthread_join(thread, NULL);
        w->train_pg = run->pg;
        run->pg = NULL;
    } else {
        /* The thread ignores should_stop (a hung library call, the probe's
         * hang_at). It cannot be cancelled safely while it may hold locks
         * or a half-used connection, so it keeps the run and the training
         * connection; the job is settled from here and the process image is
         * then replaced (main.c), which ends the thread. */
        log_event(LOG_ERROR, job_id,
                  "training thread did not stop within %d ms; the worker will "
                  "restart after settling the job",
                  HEARTBEAT_STOP_WAIT_MS);
        pthread_detach(thread);
        w->must_reexec = 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    note_job_time(w,
                  (long long)(t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000);
    if (pending && finished && run->rc == ENMS_OK && completes_in_one_statement(run) &&
        pending->n < RUNNER_BATCH_MAX) {
        /* decide() would say OUT_COMPLETE: held, with the stages the
         * watch did not publish (none for a job that lost its lease). */
        struct stage_list *stages = &pending->stages[pending->n];
        memset(stages, 0, sizeof *stages);
        if (atomic_load(&run->reason) != STOP_LEASE_LOST)
            take_stages(run, stages);
        if (pending->n == 0)
            pending->oldest_ms = runner_now_ms();
        pending->run[pending->n++] = run;
        return;
    }
    settle(run, finished);
    if (finished)
        run_free(run); /* else it stays with the stuck thread */
}

int runner_run(struct worker *w, const char *job_id)
{
    const struct enms_config *cfg = w->cfg;
    struct run *run = run_new(w); /* run_started owns it once started */
    char err[512];
    int rc;

    if (!run) {
        log_event(LOG_ERROR, job_id, "out of memory");
        hand_back_unstarted(w, job_id);
        return ENMS_ENOMEM;
    }
    rc = runner_pg(w, err, sizeof err);
    if (rc == ENMS_OK)
        rc = jobs_start(w->pg, job_id, cfg->worker_id, &run->job, err, sizeof err);
    if (rc == ENMS_ECONFLICT || rc == ENMS_ENOTFOUND) {
        /* Cancelled while queued, a duplicate push of a job that runs or
         * ran elsewhere, or an unknown id: not ours to run. */
        log_event(LOG_INFO, job_id, "not started: %s", err);
        if (runner_redis(w, err, sizeof err) != ENMS_OK ||
            queue_ack(w->redis, cfg->redis_prefix, cfg->worker_id, job_id, err, sizeof err) !=
                ENMS_OK)
            w->dirty = 1;
        run_free(run);
        return ENMS_OK;
    }
    if (rc != ENMS_OK) {
        log_event(LOG_WARN, job_id, "cannot start: %s", err);
        hand_back_unstarted(w, job_id);
        run_free(run);
        return rc;
    }
    run_started(run, NULL);
    return ENMS_OK;
}

int runner_run_batch(struct worker *w, char (*ids)[QUEUE_ID_LEN + 1], int n)
{
    const struct enms_config *cfg = w->cfg;
    struct run *runs[RUNNER_BATCH_MAX] = {0};
    struct job_record recs[RUNNER_BATCH_MAX];
    const char *idp[RUNNER_BATCH_MAX];
    struct batch *b = calloc(1, sizeof *b); /* freed here */
    char err[512];
    int rc = ENMS_OK;

    if (n > RUNNER_BATCH_MAX)
        n = RUNNER_BATCH_MAX; /* main.c never claims more */
    int allocated = b != NULL;
    for (int i = 0; i < n; i++) {
        idp[i] = ids[i];
        runs[i] = run_new(w);
        allocated = allocated && runs[i];
    }
    if (!allocated) {
        log_warn("out of memory for a batch of %d jobs; handed back", n);
        for (int i = 0; i < n; i++)
            hand_back_unstarted(w, ids[i]);
        rc = ENMS_ENOMEM;
        goto done;
    }
    rc = runner_pg(w, err, sizeof err);
    if (rc == ENMS_OK)
        rc = jobs_start_batch(w->pg, idp, n, cfg->worker_id, recs, err, sizeof err);
    if (rc != ENMS_OK) {
        log_warn("cannot start a batch of %d jobs: %s", n, err);
        for (int i = 0; i < n; i++)
            hand_back_unstarted(w, ids[i]);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        struct run *run = runs[i];
        runs[i] = NULL;
        if (!recs[i].id[0]) {
            log_event(LOG_INFO, ids[i], "not started: not pending (cancelled, taken or unknown)");
            if (runner_redis(w, err, sizeof err) != ENMS_OK ||
                queue_ack(w->redis, cfg->redis_prefix, cfg->worker_id, ids[i], err, sizeof err) !=
                    ENMS_OK)
                w->dirty = 1;
            run_free(run);
            continue;
        }
        run->job = recs[i]; /* the run owns params_json now */
        memset(&recs[i], 0, sizeof recs[i]);
        b->waiting[b->nwaiting++] = run;
    }
    /* Each waits running in PostgreSQL without a lease, which housekeeping
     * tolerates for a heartbeat TTL after its start; a slow job among them
     * hands the rest back (flush_on_slow), and so does a stopping worker. */
    while (b->next < b->nwaiting) {
        if (atomic_load(&w->shutdown) || w->must_reexec) {
            hand_back_batch(b, atomic_load(&w->shutdown) ? "handed back: worker shutting down"
                                                         : "handed back: worker restarting");
            break;
        }
        struct run *run = b->waiting[b->next];
        b->waiting[b->next++] = NULL;
        if (b->n > 0 && runner_now_ms() - b->oldest_ms > RUNNER_FLUSH_AFTER_MS)
            flush_completions(w, b, 1);
        run_started(run, b);
    }
    flush_completions(w, b, 1);
    rc = ENMS_OK;
done:
    for (int i = 0; i < n; i++)
        run_free(runs[i]); /* those never started */
    free(b);
    return rc;
}

int runner_recover(struct worker *w, char *err, size_t errlen)
{
    const struct enms_config *cfg = w->cfg;
    char key[QUEUE_KEY_MAX];
    redisReply *reply = NULL; /* freeReplyObject */
    int rc = queue_key(key, sizeof key, cfg->redis_prefix, "processing", cfg->worker_id);
    if (rc != ENMS_OK)
        return enms_fail(err, errlen, rc, "processing key too long");
    if ((rc = runner_redis(w, err, errlen)) != ENMS_OK ||
        (rc = runner_pg(w, err, errlen)) != ENMS_OK)
        return rc;
    reply = redisCommand(w->redis, "LRANGE %s 0 %d", key, RECOVER_MAX_ENTRIES - 1);
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        rc = enms_fail(err, errlen, ENMS_EREDIS, "redis: LRANGE: %s",
                       reply && reply->type == REDIS_REPLY_ERROR ? reply->str : w->redis->errstr);
        goto done;
    }
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *e = reply->element[i];
        char id[QUEUE_ID_LEN + 1], status[JOBS_STATUS_SIZE] = "";
        if (e->type != REDIS_REPLY_STRING || !queue_is_uuid(e->str, e->len))
            continue;
        memcpy(id, e->str, QUEUE_ID_LEN);
        id[QUEUE_ID_LEN] = '\0';
        rc = jobs_status(w->pg, id, status, NULL, err, errlen);
        if (rc != ENMS_OK && rc != ENMS_ENOTFOUND)
            goto done;
        if (rc == ENMS_OK && strcmp(status, "running") == 0)
            continue; /* its lease decides; housekeeping settles it */
        if (rc == ENMS_OK && strcmp(status, "pending") == 0) {
            /* Its queue is in PostgreSQL, but "default" is the only queue
             * this worker serves and the only one it could have come from. */
            if ((rc = queue_push(w->redis, cfg->redis_prefix, QUEUE_DEFAULT, id, err, errlen)) !=
                ENMS_OK)
                goto done;
            log_event(LOG_INFO, id, "found pending in this worker's processing list; pushed back");
        }
        if ((rc = queue_ack(w->redis, cfg->redis_prefix, cfg->worker_id, id, err, errlen)) !=
            ENMS_OK)
            goto done;
    }
    rc = ENMS_OK;
done:
    if (reply)
        freeReplyObject(reply);
    return rc;
}
