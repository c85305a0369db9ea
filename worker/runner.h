/* runner.h - one job's life inside the worker: the start (PostgreSQL
 * compare-and-set, lease, live state), training on a thread of its own while
 * the main thread watches it (heartbeat.h), and the final writes, PostgreSQL
 * first and Redis after, so the id leaves the processing list only once the
 * record is settled.
 *
 * It does not claim jobs (main.c does, with queue_claim) and does not train
 * (training.h does). */
#ifndef ENMS_WORKER_RUNNER_H
#define ENMS_WORKER_RUNNER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <hiredis.h>
#include <libpq-fe.h>

#include "registry.h"
#include "training.h"
#include "../common/config.h"
#include "../common/jobs.h"
#include "../common/queue.h"
#include "../common/redis.h"

/* Why a running job was told to stop. The first reason set wins. */
enum stop_reason {
    STOP_NONE = 0,
    STOP_CANCEL,     /* cancel flag in Redis, or PostgreSQL says cancelled */
    STOP_TIMEOUT,    /* ran for cfg->job_timeout_s */
    STOP_LEASE_LOST, /* lease gone or the attempt no longer holds the job */
    STOP_SHUTDOWN,   /* SIGTERM and the shutdown grace ran out */
    STOP_STUCK,      /* progress did not move for cfg->stuck_progress_s (heartbeat.c) */
};

/* The worker process: configuration, identity, the main thread's
 * connections and the shutdown state. One per process, on main()'s stack;
 * passed to everything instead of globals. */
struct worker {
    const struct enms_config *cfg;
    const struct redis_url *redis_url;
    struct worker_identity me;
    PGconn *pg;                  /* main thread only; PQfinish at exit */
    redisContext *redis;         /* main thread only; redisFree at exit */
    PGconn *train_pg;            /* the training connection between jobs; lent to each job's
                                    run (run->pg) and taken back after the join */
    atomic_int shutdown;         /* 1 once the first SIGTERM/SIGINT arrived */
    atomic_llong shutdown_at_ms; /* runner_now_ms() of that signal */
    int dirty;                   /* the processing list may hold ids already settled: recover */
    int must_reexec;             /* a training thread did not stop: replace the process image */
    unsigned int seed;           /* rand_r state for backoff jitter (main thread only) */
    long long job_avg_us;        /* recent time per job, start to end; 0 before the first
                                    (main thread only; runner_batch_size) */
};

/* Claiming several jobs at a time (worker/main.c, runner_run_batch). A
 * worker whose recent jobs were short takes as many as it expects to finish
 * within RUNNER_BATCH_BUDGET_US, at most RUNNER_BATCH_MAX: they start in
 * one statement and their completions are written together, so no-op and
 * other short jobs share PostgreSQL's per-statement and per-commit cost. A
 * worker with long jobs takes one at a time and leaves the rest of the
 * queue to other workers. Completions are held at most about
 * RUNNER_FLUSH_AFTER_MS (or until the job after them passes its first
 * watch tick, HEARTBEAT_TICK_MS). */
#define RUNNER_BATCH_MAX       32
#define RUNNER_BATCH_BUDGET_US 20000
#define RUNNER_FLUSH_AFTER_MS  20

struct batch; /* runner.c: the jobs of one claim */

#define RUN_STAGES_MAX 8

/* One job held by this worker. Lives from jobs_start until its training
 * thread has been joined (or, when that thread is stuck, until the process
 * image is replaced). */
struct run {
    struct worker *w;
    struct job_record job; /* job.attempts is the fencing token */
    long long started_ms;  /* runner_now_ms() when jobs_start succeeded */
    PGconn *pg;            /* the training thread's own connection, lent by the worker */
    atomic_int stop;       /* what should_stop() returns */
    atomic_int reason;     /* enum stop_reason */

    pthread_mutex_t lock; /* guards the fields below */
    pthread_cond_t cond;  /* CLOCK_MONOTONIC; signalled when done becomes 1 */
    int percent;          /* latest progress from the training thread */
    char stage[128];
    unsigned long seq; /* bumped on every progress report */
    /* Stages entered since the watcher last looked, oldest first: each is
     * published even when several pass within one tick (a short stage
     * would otherwise never be seen). A stage is its text before ':', so
     * "fitting: tree 3/100" does not count as a new one. At most
     * RUN_STAGES_MAX are kept. */
    struct {
        int percent;
        char stage[128];
    } entered[RUN_STAGES_MAX];
    int nentered;
    /* Called once by heartbeat_watch when the job is still training after
     * its first tick (runner.c: writes the completions held back by the
     * batch, batch). NULL: nothing to do. */
    void (*on_slow)(struct run *run);
    struct batch *batch;
    int done; /* training thread finished; rc, result and err are final */
    int rc;
    struct train_result result;
    char err[512];
};

/* Monotonic clock in milliseconds. */
long long runner_now_ms(void);

/* Sets the stop flag with reason, unless a reason is already set. Returns 1
 * when this call set it. */
int runner_request_stop(struct run *run, enum stop_reason reason);

/* Runs the job whose id main.c just moved into this worker's processing
 * list, to the end: settled in PostgreSQL and acknowledged in Redis, handed
 * back to the queue, or dropped because it was not ours to run. Returns 0,
 * or ENMS_EDB / ENMS_EREDIS when a dependency is down and the caller should
 * back off before claiming again. Sets w->must_reexec when the training
 * thread would not stop. */
int runner_run(struct worker *w, const char *job_id);

/* runner_run for n (2..RUNNER_BATCH_MAX) ids main.c just moved into the
 * processing list together: started in one statement, run one after
 * another, their completions written together when each is one statement
 * (other ends are written as runner_run writes them). A job that waited
 * half a heartbeat TTL, or meets a stopping worker, is handed back. Same
 * returns as runner_run. */
int runner_run_batch(struct worker *w, char (*ids)[QUEUE_ID_LEN + 1], int n);

/* How many jobs to claim next: 1 until a job has been timed, then as many
 * as recent job times fit in RUNNER_BATCH_BUDGET_US. */
int runner_batch_size(const struct worker *w);

/* Makes the worker's own processing list honest: ids whose jobs are pending
 * go back to their queue, ids of finished or unknown jobs are removed, ids
 * of running jobs are left to housekeeping (their lease decides). Used at
 * start-up (a worker restarted under the same id) and after a clean-up that
 * Redis interrupted. 0 or a negative enms_err. */
int runner_recover(struct worker *w, char *err, size_t errlen);

/* Publishes a job event on <p>:events with the run's latest progress;
 * error may be NULL. Failures are logged, not returned: events are a
 * courtesy to live viewers, the record is in PostgreSQL. */
void runner_publish(struct run *run, const char *event, const char *status, const char *error);

/* Publishes training.progress for a given percent and stage (a stage the
 * job passed through), rather than the latest. */
void runner_publish_stage(struct run *run, int percent, const char *stage);

/* Reconnects w->redis when needed. 0 or ENMS_EREDIS. */
int runner_redis(struct worker *w, char *err, size_t errlen);

/* Reconnects w->pg when needed. 0 or ENMS_EDB. */
int runner_pg(struct worker *w, char *err, size_t errlen);

#endif
