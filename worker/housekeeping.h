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
 *    are settled.
 *
 * Each worker process runs housekeeping_thread; only the lock holder works. */
#ifndef ENMS_WORKER_HOUSEKEEPING_H
#define ENMS_WORKER_HOUSEKEEPING_H

#include <stdatomic.h>
#include <stddef.h>
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
};

/* One pass, assuming the caller holds the lock. Returns 0 or a negative
 * enms_err; *stats counts what it did. */
int housekeeping_pass(PGconn *pg, redisContext *redis, const struct enms_config *cfg,
                      struct housekeeping_stats *stats, char *err, size_t errlen);

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
