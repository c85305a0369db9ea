/* heartbeat.c - the watch over a training job (see heartbeat.h): cancel,
 * timeout and shutdown checks, lease and heartbeat renewal, the stuck-progress
 * check, throttled progress. It only decides that a job must stop; runner.c
 * settles it. */
#include "heartbeat.h"
#include "../common/error.h"
#include "../common/log.h"
#include "../common/queue.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* What the watch remembers between ticks. */
struct watch {
    struct run *run;
    long long next_beat_ms;      /* when the next lease/registry/PostgreSQL beat is due */
    long long lease_ok_ms;       /* last time the lease was known to be ours */
    long long published_ms;      /* last progress publication */
    unsigned long published_seq; /* run->seq at that publication */
    long long stop_seen_ms;      /* when the watch first saw the stop flag; 0 before */
    int moved_percent;           /* progress as last seen to change ... */
    char moved_stage[128];
    long long moved_ms; /* ... and when (the start, before any report) */
};

/* Waits on the run's condition variable until the training thread is done
 * or ms have passed. Returns run->done. */
static int wait_done(struct run *run, long ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&run->lock);
    while (!run->done) {
        if (pthread_cond_timedwait(&run->cond, &run->lock, &until) == ETIMEDOUT)
            break;
    }
    int done = run->done;
    pthread_mutex_unlock(&run->lock);
    return done;
}

/* Copies the latest progress out of the run's slot. */
static unsigned long progress_snapshot(struct run *run, int *percent, char *stage, size_t stagelen)
{
    pthread_mutex_lock(&run->lock);
    *percent = run->percent;
    snprintf(stage, stagelen, "%s", run->stage);
    unsigned long seq = run->seq;
    pthread_mutex_unlock(&run->lock);
    return seq;
}

static void stop_with(struct run *run, enum stop_reason reason, const char *why)
{
    if (runner_request_stop(run, reason))
        log_event(LOG_INFO, run->job.id, "stopping attempt %d: %s", run->job.attempts, why);
}

/* The cheap checks made every tick: the cancel flag, the timeout and the
 * shutdown grace. */
static void check_stops(struct watch *wt, long long now)
{
    struct run *run = wt->run;
    struct worker *w = run->w;
    const struct enms_config *cfg = w->cfg;
    char err[512], why[128];

    if (runner_redis(w, err, sizeof err) == ENMS_OK) {
        int flag = cancel_flag_get(w->redis, cfg->redis_prefix, run->job.id, err, sizeof err);
        if (flag == 1)
            stop_with(run, STOP_CANCEL, "cancel requested");
        else if (flag < 0)
            log_event(LOG_WARN, run->job.id, "cannot read the cancel flag: %s", err);
    }
    if (now - run->started_ms >= cfg->job_timeout_s * 1000LL) {
        snprintf(why, sizeof why, "timed out after %d s", cfg->job_timeout_s);
        stop_with(run, STOP_TIMEOUT, why);
    }
    if (atomic_load(&w->shutdown) &&
        now - atomic_load(&w->shutdown_at_ms) >= cfg->shutdown_grace_s * 1000LL) {
        snprintf(why, sizeof why, "worker shutting down; the %d s grace ran out",
                 cfg->shutdown_grace_s);
        stop_with(run, STOP_SHUTDOWN, why);
    }
}

/* Notes when the training's progress last moved: a new percentage or a new
 * stage text ("probe: step 3/10", "fitting: tree 4/100"). A report that
 * repeats the same values is not movement: a loop re-reporting one point
 * is as stuck as silence. */
static void track_progress(struct watch *wt, long long now)
{
    char stage[128];
    int percent;
    progress_snapshot(wt->run, &percent, stage, sizeof stage);
    if (percent != wt->moved_percent || strcmp(stage, wt->moved_stage) != 0) {
        wt->moved_percent = percent;
        snprintf(wt->moved_stage, sizeof wt->moved_stage, "%s", stage);
        wt->moved_ms = now;
    }
}

/* Live but stuck: the lease was just renewed (so this attempt still holds
 * the job and the process is not a thawed zombie), yet the progress has not
 * moved for ENMS_STUCK_PROGRESS_S. Asked only right after a renewal, so a
 * process that was frozen learns it lost the lease before it can blame its
 * training for the time it spent frozen. */
static void check_stuck(struct watch *wt, long long now)
{
    const struct enms_config *cfg = wt->run->w->cfg;
    char why[256];
    if (cfg->stuck_progress_s <= 0 || now - wt->moved_ms < cfg->stuck_progress_s * 1000LL)
        return;
    snprintf(why, sizeof why, "no progress for %d s (stuck at %d%%, %.100s)", cfg->stuck_progress_s,
             wt->moved_percent, wt->moved_stage[0] ? wt->moved_stage : "no stage");
    stop_with(wt->run, STOP_STUCK, why);
}

/* The periodic beat: lease, registry hash, PostgreSQL heartbeat. A lease
 * that cannot be renewed for a whole TTL is presumed lost: by then
 * housekeeping may have given the job to someone else. */
static void beat(struct watch *wt, long long now)
{
    struct run *run = wt->run;
    struct worker *w = run->w;
    const struct enms_config *cfg = w->cfg;
    const char *id = run->job.id;
    int attempt = run->job.attempts;
    char err[512], stage[128];
    int percent;

    wt->next_beat_ms = now + cfg->heartbeat_interval_s * 1000LL;
    if (runner_redis(w, err, sizeof err) == ENMS_OK) {
        int rc = lease_renew(w->redis, cfg->redis_prefix, id, cfg->worker_id, attempt,
                             cfg->heartbeat_ttl_s * 1000, err, sizeof err);
        if (rc == ENMS_OK) {
            wt->lease_ok_ms = now;
            check_stuck(wt, now);
        } else if (rc == ENMS_ECONFLICT) {
            stop_with(run, STOP_LEASE_LOST, err);
        } else {
            log_event(LOG_WARN, id, "cannot renew the lease: %s", err);
        }
        const char *state = atomic_load(&w->shutdown) ? "stopping" : "busy";
        if (registry_announce(w->redis, &w->me, state, id, err, sizeof err) != ENMS_OK)
            log_event(LOG_WARN, id, "cannot renew the worker's registry hash: %s", err);
    } else {
        log_event(LOG_WARN, id, "redis unavailable for the heartbeat: %s", err);
    }
    if (now - wt->lease_ok_ms >= cfg->heartbeat_ttl_s * 1000LL)
        stop_with(run, STOP_LEASE_LOST, "lease not renewed for a whole TTL");

    progress_snapshot(run, &percent, stage, sizeof stage);
    if (runner_pg(w, err, sizeof err) != ENMS_OK) {
        log_event(LOG_WARN, id, "postgresql unavailable for the heartbeat: %s", err);
        return;
    }
    int rc = jobs_heartbeat(w->pg, id, attempt, percent, stage[0] ? stage : NULL, err, sizeof err);
    if (rc == ENMS_ECONFLICT) {
        /* Someone else moved the job: a cancel through PostgreSQL alone, or a
         * re-queue. Either way this attempt must stop now. */
        char status[JOBS_STATUS_SIZE] = "";
        if (jobs_status(w->pg, id, status, NULL, err, sizeof err) == ENMS_OK &&
            strcmp(status, "cancelled") == 0)
            stop_with(run, STOP_CANCEL, "cancelled in postgresql");
        else
            stop_with(run, STOP_LEASE_LOST, "the attempt no longer holds the job in postgresql");
    } else if (rc != ENMS_OK) {
        log_event(LOG_WARN, id, "cannot record the heartbeat: %s", err);
    }
}

/* Publishes every stage the job entered since the last look, in order:
 * a stage shorter than a tick still gets its event. */
static void publish_entered_stages(struct run *run)
{
    int n, percent[RUN_STAGES_MAX];
    char stage[RUN_STAGES_MAX][128];
    pthread_mutex_lock(&run->lock);
    n = run->nentered;
    for (int i = 0; i < n; i++) {
        percent[i] = run->entered[i].percent;
        snprintf(stage[i], sizeof stage[i], "%s", run->entered[i].stage);
    }
    run->nentered = 0;
    pthread_mutex_unlock(&run->lock);
    for (int i = 0; i < n; i++)
        runner_publish_stage(run, percent[i], stage[i]);
}

/* Sends progress to the live hash and the events channel when it changed
 * and the last publication is at least a tick old; stages entered in
 * between are published first. */
static void publish_progress(struct watch *wt, long long now)
{
    struct run *run = wt->run;
    struct worker *w = run->w;
    char err[512], stage[128], percent_text[16], beat_text[24];
    int percent;
    publish_entered_stages(run);
    unsigned long seq = progress_snapshot(run, &percent, stage, sizeof stage);

    if (seq == wt->published_seq || now - wt->published_ms < HEARTBEAT_TICK_MS)
        return;
    if (runner_redis(w, err, sizeof err) != ENMS_OK)
        return;
    wt->published_seq = seq;
    wt->published_ms = now;
    snprintf(percent_text, sizeof percent_text, "%d", percent);
    snprintf(beat_text, sizeof beat_text, "%lld", (long long)time(NULL));
    const char *fields[] = {"progress", "stage", "heartbeat", "updated"};
    const char *values[] = {percent_text, stage, beat_text, beat_text};
    if (job_live_set(w->redis, w->cfg->redis_prefix, run->job.id, 4, fields, values,
                     QUEUE_JOB_TTL_S, err, sizeof err) != ENMS_OK)
        log_event(LOG_WARN, run->job.id, "cannot update the live hash: %s", err);
    runner_publish(run, "training.progress", "running", NULL);
}

void heartbeat_watch(struct run *run)
{
    long long now = runner_now_ms();
    struct watch wt = {
        .run = run,
        .next_beat_ms = now + run->w->cfg->heartbeat_interval_s * 1000LL,
        .lease_ok_ms = now, /* runner.c took the lease just before */
        .moved_ms = now,
    };
    track_progress(&wt, now);

    while (!wait_done(run, HEARTBEAT_TICK_MS)) {
        if (run->on_slow) {
            run->on_slow(run);
            run->on_slow = NULL;
        }
        now = runner_now_ms();
        if (atomic_load(&run->stop)) {
            /* Told to stop: give the thread its time, and keep the lease
             * meanwhile unless it is already lost. */
            if (wt.stop_seen_ms == 0)
                wt.stop_seen_ms = now;
            if (now - wt.stop_seen_ms >= HEARTBEAT_STOP_WAIT_MS)
                return;
            if (now >= wt.next_beat_ms && atomic_load(&run->reason) != STOP_LEASE_LOST)
                beat(&wt, now);
            continue;
        }
        check_stops(&wt, now);
        track_progress(&wt, now);
        if (now >= wt.next_beat_ms)
            beat(&wt, now);
        /* A thawed zombie learns in beat() that the job is another
         * attempt's now; its stale progress must not overwrite theirs in
         * the live hash. */
        if (atomic_load(&run->reason) != STOP_LEASE_LOST)
            publish_progress(&wt, now);
    }
    /* Stages entered since the last tick are left in the run: the runner
     * publishes them with the job's end, in the same round trip, before
     * the end's own event (unless the job is no longer ours). */
}
