/* runner.c - one job's life in the worker (see runner.h): start, train on a
 * thread of its own, settle. Every PostgreSQL write is a compare-and-set on
 * the attempt (the fencing token), so whatever this worker believes, it can
 * never overwrite a newer attempt or a cancellation. */
#include "runner.h"
#include "heartbeat.h"
#include "../common/error.h"
#include "../common/log.h"
#include "../common/pg.h"
#include "../common/queue.h"

#include <cJSON.h>
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

void runner_publish(struct run *run, const char *event, const char *status, const char *error)
{
    struct worker *w = run->w;
    char stamp[40], stage[128], err[256];
    struct timeval now;
    struct tm utc;
    int percent;
    cJSON *o = NULL;
    char *text = NULL; /* cJSON_free */

    pthread_mutex_lock(&run->lock);
    percent = run->percent;
    snprintf(stage, sizeof stage, "%s", run->stage);
    pthread_mutex_unlock(&run->lock);
    gettimeofday(&now, NULL);
    gmtime_r(&now.tv_sec, &utc);
    size_t n = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
    snprintf(stamp + n, sizeof stamp - n, ".%03ldZ", (long)(now.tv_usec / 1000));

    /* The same fields housekeeping publishes, so a viewer reads one shape. */
    if (!(o = cJSON_CreateObject()) || !cJSON_AddStringToObject(o, "event", event) ||
        !cJSON_AddStringToObject(o, "job_id", run->job.id) ||
        !cJSON_AddStringToObject(o, "status", status) ||
        !cJSON_AddNumberToObject(o, "progress_pct", percent) ||
        !cJSON_AddStringToObject(o, "stage", stage) ||
        !cJSON_AddStringToObject(o, "model_type", run->job.model_type) ||
        !cJSON_AddStringToObject(o, "machine_id", run->job.machine_id) ||
        !cJSON_AddNumberToObject(o, "attempt", run->job.attempts) ||
        !cJSON_AddStringToObject(o, "worker_id", w->cfg->worker_id) ||
        !(error ? cJSON_AddStringToObject(o, "error_message", error)
                : cJSON_AddNullToObject(o, "error_message")) ||
        !cJSON_AddStringToObject(o, "published_at", stamp) || !(text = cJSON_PrintUnformatted(o))) {
        log_event(LOG_WARN, run->job.id, "out of memory building event %s", event);
        goto done;
    }
    if (runner_redis(w, err, sizeof err) != ENMS_OK ||
        events_publish(w->redis, w->cfg->redis_prefix, text, err, sizeof err) != ENMS_OK)
        log_event(LOG_WARN, run->job.id, "cannot publish %s: %s", event, err);
done:
    cJSON_free(text);
    cJSON_Delete(o);
}

/* Writes the job's live hash; logged, not returned (see runner_publish). */
static void live_set(struct run *run, const char *status, const char *error, int ttl_s)
{
    struct worker *w = run->w;
    char attempt[16], percent[16], now_text[24], stage[128], err[256];
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
    if (runner_redis(w, err, sizeof err) != ENMS_OK ||
        job_live_set(w->redis, w->cfg->redis_prefix, run->job.id, error ? 8 : 7, fields, values,
                     ttl_s, err, sizeof err) != ENMS_OK)
        log_event(LOG_WARN, run->job.id, "cannot update the live hash: %s", err);
}

static void set_progress(struct run *run, int percent, const char *stage)
{
    pthread_mutex_lock(&run->lock);
    if (percent >= 0)
        run->percent = percent > 100 ? 100 : percent;
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

    memset(&result, 0, sizeof result);
    result.training_samples = -1;
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

/* completed, with the model version and sample count, in one transaction:
 * the compare-and-set comes first and locks the row, so a stale attempt or
 * a cancelled job rolls back with nothing written. */
static int write_completed(struct run *run, const void *arg, char *err, size_t errlen)
{
    (void)arg;
    PGconn *pg = run->w->pg;
    const struct train_result *res = &run->result;
    const char *id = run->job.id;
    PGresult *q = NULL;
    char samples[16];
    int rc = pg_command(pg, "BEGIN", err, errlen);
    if (rc != ENMS_OK)
        return rc;
    rc = jobs_finish(pg, id, run->job.attempts, "completed", NULL, res->metrics_json, err, errlen);
    if (rc != ENMS_OK)
        goto fail;
    snprintf(samples, sizeof samples, "%d", res->training_samples);
    const char *samples_param = res->training_samples >= 0 ? samples : NULL;
    if (res->artifact_json) {
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
        const char *uparams[] = {id, PQgetvalue(q, 0, 0), PQgetvalue(q, 0, 1), samples_param};
        PGresult *u = pg_exec(pg, PGRES_COMMAND_OK,
                              "UPDATE model_training_history SET result_version_id = $2::uuid, "
                              "model_version = $3::int, training_samples = $4::int "
                              "WHERE id = $1::uuid",
                              4, uparams, err, errlen);
        if (!u) {
            rc = ENMS_EDB;
            goto fail;
        }
        PQclear(u);
    } else if (samples_param) {
        const char *uparams[] = {id, samples_param};
        PGresult *u = pg_exec(pg, PGRES_COMMAND_OK,
                              "UPDATE model_training_history SET training_samples = $2::int "
                              "WHERE id = $1::uuid",
                              2, uparams, err, errlen);
        if (!u) {
            rc = ENMS_EDB;
            goto fail;
        }
        PQclear(u);
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

/* The Redis half of settling a job, after PostgreSQL: lease, processing
 * list, live hash, event. Retried a few times; what still fails is left to
 * runner_recover (w->dirty) and housekeeping, since the record is already
 * right. status/event NULL: leave the live hash and events alone (the job
 * is someone else's now). */
static void redis_settle(struct run *run, const char *status, const char *event, const char *error)
{
    struct worker *w = run->w;
    const char *prefix = w->cfg->redis_prefix;
    const char *id = run->job.id;
    long step_ms = BACKOFF_FIRST_MS;
    char err[512] = "";

    for (int tries = 0; tries < REDIS_CLEANUP_TRIES; tries++) {
        if (tries > 0)
            sleep_ms(backoff_next(w, &step_ms));
        if (runner_redis(w, err, sizeof err) != ENMS_OK ||
            lease_release(w->redis, prefix, id, w->cfg->worker_id, run->job.attempts, err,
                          sizeof err) != ENMS_OK ||
            queue_ack(w->redis, prefix, w->cfg->worker_id, id, err, sizeof err) != ENMS_OK)
            continue;
        if (status) {
            live_set(run, status, error, QUEUE_DONE_TTL_S);
            runner_publish(run, event, status, error);
        }
        return;
    }
    log_event(LOG_WARN, id, "settled in postgresql, but redis clean-up failed: %s", err);
    w->dirty = 1;
}

/* Hands the job back: pending in PostgreSQL, then onto its queue, then out
 * of our processing list, so it is never in no list at all. */
static void settle_release(struct run *run, const char *reason)
{
    struct worker *w = run->w;
    const char *id = run->job.id;
    char err[512];
    int rc = final_write(run, write_released, reason, "pending", err, sizeof err);
    if (rc != ENMS_OK) {
        log_event(LOG_INFO, id, "could not hand back attempt %d (%s); abandoned", run->job.attempts,
                  err);
        redis_settle(run, NULL, NULL, NULL);
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
    live_set(run, "pending", NULL, QUEUE_JOB_TTL_S);
    redis_settle(run, NULL, NULL, NULL);
    runner_publish(run, "training.requeued", "pending", NULL);
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

/* Writes the end of the job: PostgreSQL first, then Redis. */
static void settle(struct run *run, int finished)
{
    const char *id = run->job.id;
    int attempt = run->job.attempts;
    char msg[600], err[512];
    int rc;

    switch (decide(run, finished, msg, sizeof msg)) {
    case OUT_COMPLETE:
        rc = final_write(run, write_completed, NULL, "completed", err, sizeof err);
        if (rc == ENMS_ECONFLICT) {
            log_event(LOG_INFO, id, "job %s attempt %d is stale; result dropped (%s)", id, attempt,
                      err);
            redis_settle(run, NULL, NULL, NULL);
            return;
        }
        if (rc != ENMS_OK) {
            log_event(LOG_ERROR, id, "cannot record the completion: %s", err);
            redis_settle(run, NULL, NULL, NULL);
            return;
        }
        set_progress(run, 100, "completed");
        log_event(LOG_INFO, id, "attempt %d completed", attempt);
        redis_settle(run, "completed", "training.completed", NULL);
        return;
    case OUT_FAIL:
        rc = final_write(run, write_failed, msg, "failed", err, sizeof err);
        if (rc != ENMS_OK) {
            log_event(LOG_INFO, id, "job %s attempt %d is stale; failure dropped (%s)", id, attempt,
                      err);
            redis_settle(run, NULL, NULL, NULL);
            return;
        }
        set_progress(run, -1, "failed");
        log_event(LOG_INFO, id, "attempt %d failed: %s", attempt, msg);
        redis_settle(run, "failed", "training.failed", msg);
        return;
    case OUT_CANCELLED:
        rc = final_write(run, write_cancelled, NULL, NULL, err, sizeof err);
        if (rc != ENMS_OK)
            log_event(LOG_WARN, id, "cannot confirm the cancel: %s", err);
        set_progress(run, -1, "cancelled");
        log_event(LOG_INFO, id, "attempt %d stopped: cancelled", attempt);
        redis_settle(run, "cancelled", "training.cancelled", "cancelled by request");
        return;
    case OUT_RELEASE:
        settle_release(run, msg);
        return;
    case OUT_ABANDON:
        log_event(LOG_INFO, id, "attempt %d no longer holds the job; abandoned", attempt);
        redis_settle(run, NULL, NULL, NULL);
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

int runner_run(struct worker *w, const char *job_id)
{
    const struct enms_config *cfg = w->cfg;
    struct run *run = run_new(w); /* run_free, unless its thread is stuck */
    pthread_t thread;
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
        rc = ENMS_OK;
        goto done;
    }
    if (rc != ENMS_OK) {
        log_event(LOG_WARN, job_id, "cannot start: %s", err);
        hand_back_unstarted(w, job_id);
        goto done;
    }
    run->started_ms = runner_now_ms();
    set_progress(run, 0, "starting");
    log_event(LOG_INFO, job_id, "attempt %d started (%s for machine %s)", run->job.attempts,
              run->job.model_type, run->job.machine_id);

    if ((rc = runner_redis(w, err, sizeof err)) != ENMS_OK ||
        (rc = lease_acquire(w->redis, cfg->redis_prefix, job_id, cfg->worker_id, run->job.attempts,
                            cfg->heartbeat_ttl_s * 1000, err, sizeof err)) != ENMS_OK) {
        log_event(LOG_WARN, job_id, "cannot take the lease: %s", err);
        settle_release(run, "worker could not take the lease");
        goto done;
    }
    live_set(run, "running", NULL, QUEUE_JOB_TTL_S);
    if (registry_announce(w->redis, &w->me, "busy", job_id, err, sizeof err) != ENMS_OK)
        log_event(LOG_WARN, job_id, "cannot update the registry: %s", err);
    runner_publish(run, "training.started", "running", NULL);

    /* The training connection moves to the run and comes back after the
     * join: no two threads ever hold it. */
    run->pg = w->train_pg;
    w->train_pg = NULL;
    if (pthread_create(&thread, NULL, train_thread, run) != 0) {
        w->train_pg = run->pg;
        run->pg = NULL;
        log_event(LOG_ERROR, job_id, "cannot start the training thread");
        settle_release(run, "worker could not start a training thread");
        goto done;
    }
    heartbeat_watch(run);
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
    settle(run, finished);
    if (!finished)
        return ENMS_OK; /* run stays with the stuck thread */
done:
    run_free(run);
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
