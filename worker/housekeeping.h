/* housekeeping.h - recovery work that keeps the queue honest, done by one
 * worker at a time (whoever holds the Redis lock <p>:lock:housekeeping):
 *
 *  - a running job whose lease expired (its worker died or froze) goes back
 *    to pending and onto the queue; after ENMS_MAX_ATTEMPTS it is failed,
 *    dead-lettered and a training_failed alert is recorded;
 *  - a running job past ENMS_JOB_TIMEOUT_S whose worker went silent is
 *    failed with the timeout message;
 *  - a pending job that is in no Redis list for longer than
 *    ENMS_REDISPATCH_GRACE_S is pushed again (Redis flushed or restarted,
 *    or the API's push failed): losing Redis loses no job;
 *  - processing lists of workers that are gone are emptied once their jobs
 *    are settled;
 *  - A/B tests past their end time are completed (results stored, winner
 *    recorded, not activated);
 *  - the monitoring schedules (housekeeping_schedules): evaluate jobs for
 *    every active model version every ENMS_EVAL_INTERVAL_S, score jobs for
 *    every machine with an active anomaly model every ENMS_SCORE_INTERVAL_S,
 *    scheduled retrains of models whose active version is older than
 *    ENMS_RETRAIN_<TYPE>_S.
 *    Each schedule runs at most once per interval across all workers (a
 *    Redis key <p>:schedule:<name> set with NX and the interval as its
 *    TTL), and the first pass after a start finds no key, so a schedule's
 *    first run happens at start-up (docs/evaluation.md).
 *
 * Each worker process runs housekeeping_thread; only the lock holder works. */
#ifndef ENMS_WORKER_HOUSEKEEPING_H
#define ENMS_WORKER_HOUSEKEEPING_H

#include <stdatomic.h>
#include <stddef.h>
#include <cJSON.h>
#include <hiredis.h>
#include <libpq-fe.h>

#include "../common/config.h"
#include "../common/redis.h"

struct housekeeping_stats {
    int requeued; /* lease expired, back to pending */
    int dead_lettered;
    int timed_out;
    int redispatched; /* pending in PostgreSQL, pushed to Redis again */
    int orphans_removed;
    int evaluations_scheduled; /* evaluate jobs created by the schedule */
    int scorings_scheduled;    /* score jobs created */
    int retrains_scheduled;    /* training jobs with trigger_type 'scheduled' */
};

/* One pass, assuming the caller holds the lock. Returns 0 or a negative
 * enms_err; *stats counts what it did. */
int housekeeping_pass(PGconn *pg, redisContext *redis, const struct enms_config *cfg,
                      struct housekeeping_stats *stats, char *err, size_t errlen);

/* The schedules, assuming the caller holds the lock; *stats counts what
 * they created (the recovery counts are left alone). A schedule that fails
 * half-way is retried on the next pass. 0 or a negative enms_err. */
int housekeeping_schedules(PGconn *pg, redisContext *redis, const struct enms_config *cfg,
                           struct housekeeping_stats *stats, char *err, size_t errlen);

/* Creates a job of job_kind ('evaluate' or 'score') for every active model
 * version matching machine_id and model_type (NULL: any; score jobs only
 * for anomaly models) and pushes it (redis may be NULL: the re-dispatch
 * pass pushes it later). trigger_type, triggered_by and params_json (NULL:
 * {}) go into the job. When created / skipped are arrays, each created job
 * is appended as {job_id, machine_id, model_type} and each (machine, type)
 * that already has one pending or running as {machine_id, model_type,
 * job_id}; *count (may be NULL) receives the number created. 0, ENMS_EDB or
 * ENMS_ENOMEM. */
int housekeeping_monitoring_jobs(PGconn *pg, redisContext *redis, const struct enms_config *cfg,
                                 const char *job_kind, const char *machine_id,
                                 const char *model_type, const char *trigger_type,
                                 const char *triggered_by, const char *params_json, cJSON *created,
                                 cJSON *skipped, int *count, char *err, size_t errlen);

struct housekeeping_thread_args {
    const struct enms_config *cfg;
    const struct redis_url *redis_url;
    const char *holder_id; /* lock holder identity: the worker id */
    atomic_int *stop;      /* the thread returns soon after *stop becomes 1 */
};

/* Thread body: every cfg->housekeeping_interval_s, take or extend the lock
 * and run a pass. Opens and closes its own connections. Returns NULL. */
void *housekeeping_thread(void *args);

#endif
