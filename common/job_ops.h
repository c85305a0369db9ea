/* job_ops.h - operator actions on one job shared by enmsctl and the API:
 * reading the facts an event needs, announcing a change (event + live
 * hash), and requeueing a failed job (failed -> pending, pushed again,
 * removed from the dead-letter list).
 *
 * PostgreSQL is changed first, with a compare-and-set, and Redis follows:
 * should the Redis half fail, housekeeping's re-dispatch repairs it. */
#ifndef ENMS_COMMON_JOB_OPS_H
#define ENMS_COMMON_JOB_OPS_H

#include <stddef.h>
#include <libpq-fe.h>
#include <hiredis.h>

#include "jobs.h"

/* What an event says about a job, read from PostgreSQL after the change. */
struct job_facts {
    char queue_name[65];
    char model_type[32];
    char machine_id[JOBS_ID_SIZE];
    char worker_id[128];
    int attempts;
    int progress;
};

/* Reads f for job_id. ENMS_OK, ENMS_ENOTFOUND or ENMS_EDB. */
int job_facts_read(PGconn *pg, const char *job_id, struct job_facts *f, char *err, size_t errlen);

/* Publishes event on <prefix>:events and mirrors status and stage into the
 * job's live hash, which expires after done_ttl_s seconds (the caller's
 * cfg->job_done_ttl_s) for a finished job, or after QUEUE_JOB_TTL_S when
 * done_ttl_s is 0 (the job is not finished). Returns ENMS_OK or
 * ENMS_EREDIS with the first failure in err; callers treat a failure as a
 * warning because the record in PostgreSQL is already written. */
int job_announce(redisContext *redis, const char *prefix, const char *event, const char *job_id,
                 const char *status, const char *stage, const struct job_facts *f, int done_ttl_s,
                 char *err, size_t errlen);

/* Hands a job just created as pending to Redis: its live hash, the
 * training.queued event, then the push onto queue_name (NULL: "default")
 * last, so a worker popping it at once finds the hash written and its own
 * "started" is never overwritten by our "pending". Returns ENMS_OK when
 * pushed, else ENMS_EREDIS with the first failure in err: the job is
 * recorded in PostgreSQL either way, and housekeeping pushes pending jobs
 * missing from Redis. redis may be NULL (nothing is done, ENMS_EREDIS). */
int job_dispatch(redisContext *redis, const char *prefix, const char *queue_name,
                 const char *job_id, const char *model_type, const char *machine_id, char *err,
                 size_t errlen);

/* LREM id from the list key (a queue or the dead-letter list). */
int job_list_remove(redisContext *redis, const char *key, const char *id, char *err, size_t errlen);

/* failed -> pending for job_id with attempts reset, pushed onto its queue,
 * removed from the dead-letter list, announced as training.requeued; stage
 * says who asked ("requeued by operator"). f (may be NULL) receives the
 * job's facts. ENMS_ECONFLICT when the job is not failed (err names its
 * status) or another job of its machine and model type is active;
 * ENMS_ENOTFOUND for an unknown job; ENMS_EDB; ENMS_EREDIS when the push
 * failed (the row is pending: housekeeping pushes it later). */
int job_requeue(PGconn *pg, redisContext *redis, const char *prefix, const char *job_id,
                const char *stage, struct job_facts *f, char *err, size_t errlen);

#endif
