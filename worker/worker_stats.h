/* worker_stats.h - the worker's job counters, kept in Redis so that the API's
 * /metrics can show every worker's counts without scraping each worker.
 *
 *   <prefix>:stats:<host>   hash   "<model_type>|<outcome>" -> count (no TTL)
 *
 * One hash per host (cfg->worker_host), not per worker id: ids change with
 * every restart (host-pid), hosts do not, so the number of keys and of
 * Prometheus series stays bounded. The counters only grow; Redis losing
 * them looks like a counter reset to Prometheus, which rate() handles. */
#ifndef ENMS_WORKER_STATS_H
#define ENMS_WORKER_STATS_H

#include <stddef.h>
#include <hiredis.h>

#include "../common/queue.h"

/* Outcomes a worker counts, one per job attempt it touched (plus "started"
 * when it began the attempt). api/routes_prometheus.c exports only these. */
#define WORKER_STATS_STARTED   "started"   /* jobs_start succeeded: the attempt is ours */
#define WORKER_STATS_COMPLETED "completed" /* recorded as completed */
#define WORKER_STATS_FAILED    "failed"    /* recorded as failed (error, timeout) */
#define WORKER_STATS_CANCELLED "cancelled" /* stopped because it was cancelled */
#define WORKER_STATS_RELEASED  "released"  /* handed back to the queue (shutdown, transient) */
#define WORKER_STATS_LOST      "lost"      /* the attempt lost the job (lease, stale result) */

/* HINCRBY <prefix>:stats:<host> "<model_type>|<outcome>" 1. Returns 0,
 * ENMS_ETOOBIG when the key or field would be too long, or ENMS_EREDIS with
 * the reason in err. The context stays the caller's. */
int worker_stats_count(redisContext *ctx, const char *prefix, const char *host,
                       const char *model_type, const char *outcome, char *err, size_t errlen);

/* The same HINCRBY appended to a pipeline (queue.h) rather than sent: a
 * job's counter goes with its start or end in one round trip. Returns the
 * command's index, or -1 when the key or field would be too long. */
int worker_stats_pipe_count(struct queue_pipe *p, const char *prefix, const char *host,
                            const char *model_type, const char *outcome);

#endif
