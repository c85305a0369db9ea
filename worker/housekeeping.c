/* housekeeping.c - the recovery passes declared in housekeeping.h (lease
 * expiry, silent timeouts, re-dispatch of pending jobs missing from Redis,
 * processing lists of dead workers) and the thread that runs a pass while it
 * holds the Redis lock.
 *
 * It makes no status change of its own: every transition goes through the
 * compare-and-set functions of common/jobs.c, so a pass racing a worker, the
 * API, enmsctl or another pass can only lose (ENMS_ECONFLICT, the job is
 * skipped), never settle a job twice. Redis work that follows a transition
 * (push, acknowledge, dead-letter, event) is repaired by later passes when
 * it fails half-way: PostgreSQL is what the next pass reads. */
#include "housekeeping.h"
#include "../common/ab_tests.h"
#include "../common/error.h"
#include "../common/jobs.h"
#include "../common/log.h"
#include "../common/pg.h"
#include "../common/events.h"
#include "../common/queue.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define HK_MAX_JOBS      1000   /* PostgreSQL rows examined per step and pass */
#define HK_MAX_WORKERS   1000   /* workers examined per pass */
#define HK_MAX_LIST      10000  /* entries read from one processing list */
#define HK_MAX_IDS       200000 /* ids read from Redis lists for one re-dispatch */
#define HK_PAGE          1000   /* LRANGE / SCAN page size */
#define HK_SCAN_ROUNDS   1000   /* SCAN calls per pass */
#define HK_WORKER_ID_MAX 128    /* matches enms_config.worker_id */
#define HK_SLICE_MS      100    /* the thread checks *stop this often */
#define HK_BACKOFF_MAX_S 5      /* cheap reconnects; recovery soon after a store returns */

/* Everything one pass needs; the pass owns nothing in it. */
struct hk {
    PGconn *pg;
    redisContext *redis;
    const struct enms_config *cfg;
    struct housekeeping_stats *stats;
    char *err;
    size_t errlen;
};

/* Job ids read from Redis lists, NUL-terminated, IDSET_STRIDE bytes each;
 * freed by idset_free. */
#define IDSET_STRIDE (QUEUE_ID_LEN + 1)
struct idset {
    char *ids;
    size_t count, cap;
};

static void idset_free(struct idset *s)
{
    free(s->ids);
    memset(s, 0, sizeof *s);
}

/* Adds a uuid-shaped entry; other entries are ignored (they are not jobs). */
static int idset_add(struct idset *s, const char *id, size_t len)
{
    if (!queue_is_uuid(id, len))
        return ENMS_OK;
    if (s->count == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        char *ids = realloc(s->ids, cap * IDSET_STRIDE);
        if (!ids)
            return ENMS_ENOMEM;
        s->ids = ids;
        s->cap = cap;
    }
    memcpy(s->ids + s->count * IDSET_STRIDE, id, QUEUE_ID_LEN);
    s->ids[s->count * IDSET_STRIDE + QUEUE_ID_LEN] = '\0';
    s->count++;
    return ENMS_OK;
}

/* Worker ids found in Redis: names[i] is HK_WORKER_ID_MAX bytes. Freed by
 * names_free. */
struct names {
    char (*names)[HK_WORKER_ID_MAX];
    size_t count, cap;
};

static void names_free(struct names *n)
{
    free(n->names);
    memset(n, 0, sizeof *n);
}

/* Adds name unless it is already there, too long or empty. */
static int names_add(struct names *n, const char *name, size_t len)
{
    if (len == 0 || len >= HK_WORKER_ID_MAX || memchr(name, '\0', len) ||
        n->count >= HK_MAX_WORKERS)
        return ENMS_OK;
    for (size_t i = 0; i < n->count; i++) {
        if (strlen(n->names[i]) == len && memcmp(n->names[i], name, len) == 0)
            return ENMS_OK;
    }
    if (n->count == n->cap) {
        size_t cap = n->cap ? n->cap * 2 : 16;
        void *names = realloc(n->names, cap * sizeof *n->names);
        if (!names)
            return ENMS_ENOMEM;
        n->names = names;
        n->cap = cap;
    }
    memcpy(n->names[n->count], name, len);
    n->names[n->count][len] = '\0';
    n->count++;
    return ENMS_OK;
}

static int redis_fail(struct hk *hk, const redisReply *reply, const char *what)
{
    return enms_fail(hk->err, hk->errlen, ENMS_EREDIS, "redis: %s: %s", what,
                     reply && reply->type == REDIS_REPLY_ERROR ? reply->str
                     : hk->redis->errstr[0]                    ? hk->redis->errstr
                                                               : "unexpected reply");
}

static int make_key(struct hk *hk, char *buf, const char *kind, const char *name)
{
    if (queue_key(buf, QUEUE_KEY_MAX, hk->cfg->redis_prefix, kind, name) != ENMS_OK)
        return enms_fail(hk->err, hk->errlen, ENMS_ETOOBIG, "redis key %s:%s too long",
                         hk->cfg->redis_prefix, kind);
    return ENMS_OK;
}

/* Appends up to max entries of list key to *ids, a page at a time. Sets
 * *truncated when the list holds more. */
static int read_list(struct hk *hk, const char *key, size_t max, struct idset *ids, int *truncated)
{
    *truncated = 0;
    for (size_t start = 0; start < max; start += HK_PAGE) {
        redisReply *r = redisCommand(hk->redis, "LRANGE %s %lld %lld", key, (long long)start,
                                     (long long)(start + HK_PAGE - 1));
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            int rc = redis_fail(hk, r, "LRANGE");
            if (r)
                freeReplyObject(r);
            return rc;
        }
        size_t n = r->elements;
        for (size_t i = 0; i < n; i++) {
            const redisReply *e = r->element[i];
            if (e->type == REDIS_REPLY_STRING && idset_add(ids, e->str, e->len) != ENMS_OK) {
                freeReplyObject(r);
                return enms_fail(hk->err, hk->errlen, ENMS_ENOMEM, "out of memory");
            }
        }
        freeReplyObject(r);
        if (n < HK_PAGE)
            return ENMS_OK;
    }
    *truncated = 1;
    return ENMS_OK;
}

/* Writes the prefix with the glob characters of SCAN MATCH escaped, then
 * suffix. */
static int glob_pattern(struct hk *hk, char *buf, size_t buflen, const char *suffix)
{
    size_t n = 0;
    for (const char *p = hk->cfg->redis_prefix; *p; p++) {
        if (n + 2 >= buflen)
            goto toolong;
        if (strchr("*?[]\\", *p))
            buf[n++] = '\\';
        buf[n++] = *p;
    }
    size_t slen = strlen(suffix);
    if (n + slen >= buflen)
        goto toolong;
    memcpy(buf + n, suffix, slen + 1);
    return ENMS_OK;
toolong:
    return enms_fail(hk->err, hk->errlen, ENMS_ETOOBIG, "redis prefix too long");
}

/* Adds to out the <name> of every key <p>:<kind>:<name> (SCAN, bounded). */
static int scan_names(struct hk *hk, const char *kind, struct names *out)
{
    char lead[QUEUE_KEY_MAX], suffix[64], pattern[2 * QUEUE_KEY_MAX], cursor[32] = "0";
    redisReply *r = NULL;
    int rc;
    snprintf(suffix, sizeof suffix, ":%s:*", kind);
    if ((rc = make_key(hk, lead, kind, "")) != ENMS_OK ||
        (rc = glob_pattern(hk, pattern, sizeof pattern, suffix)) != ENMS_OK)
        return rc;
    size_t leadlen = strlen(lead);
    for (int round = 0; round < HK_SCAN_ROUNDS; round++) {
        r = redisCommand(hk->redis, "SCAN %s MATCH %s COUNT %d", cursor, pattern, HK_PAGE);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
            rc = redis_fail(hk, r, "SCAN");
            goto done;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        const redisReply *keys = r->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            const redisReply *k = keys->element[i];
            if (k->type != REDIS_REPLY_STRING || k->len <= leadlen ||
                memcmp(k->str, lead, leadlen) != 0)
                continue;
            if (names_add(out, k->str + leadlen, k->len - leadlen) != ENMS_OK) {
                rc = enms_fail(hk->err, hk->errlen, ENMS_ENOMEM, "out of memory");
                goto done;
            }
        }
        freeReplyObject(r);
        r = NULL;
        if (strcmp(cursor, "0") == 0)
            break;
    }
    rc = ENMS_OK;
done:
    if (r)
        freeReplyObject(r);
    return rc;
}

/* Every worker Redis knows of: members of <p>:workers and owners of any
 * <p>:processing:<w> list (a worker whose set entry is gone may still hold
 * jobs there). */
static int known_workers(struct hk *hk, struct names *out)
{
    char key[QUEUE_KEY_MAX];
    int rc = make_key(hk, key, "workers", NULL);
    if (rc != ENMS_OK)
        return rc;
    redisReply *r = redisCommand(hk->redis, "SMEMBERS %s", key);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        rc = redis_fail(hk, r, "SMEMBERS");
        goto done;
    }
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type == REDIS_REPLY_STRING && names_add(out, e->str, e->len) != ENMS_OK) {
            rc = enms_fail(hk->err, hk->errlen, ENMS_ENOMEM, "out of memory");
            goto done;
        }
    }
    rc = scan_names(hk, "processing", out);
done:
    if (r)
        freeReplyObject(r);
    return rc;
}

/* 1 when <p>:worker:<id> exists (the worker beat within its TTL), 0 when
 * not, negative on error. */
static int worker_alive(struct hk *hk, const char *worker_id)
{
    char key[QUEUE_KEY_MAX];
    int rc = make_key(hk, key, "worker", worker_id);
    if (rc != ENMS_OK)
        return rc;
    redisReply *r = redisCommand(hk->redis, "EXISTS %s", key);
    if (!r || r->type != REDIS_REPLY_INTEGER)
        rc = redis_fail(hk, r, "EXISTS");
    else
        rc = r->integer > 0;
    if (r)
        freeReplyObject(r);
    return rc;
}

/* Publishes ev; a failure is logged, not returned: an event is a courtesy
 * to live viewers, and the job's record is already written. */
static void publish(struct hk *hk, const struct job_event *ev)
{
    char ebuf[256];
    if (job_event_publish(hk->redis, hk->cfg->redis_prefix, ev, ebuf, sizeof ebuf) != ENMS_OK)
        log_event(LOG_WARN, ev->job_id, "housekeeping: could not publish %s: %s", ev->event, ebuf);
}

/* Mirrors a transition into the job's live hash <p>:job:<id>; logged, not
 * returned, for the same reason as publish(). */
static void live_update(struct hk *hk, const char *job_id, const char *status, const char *stage,
                        const char *error_message, int finished)
{
    char updated[24], ebuf[256];
    snprintf(updated, sizeof updated, "%lld", (long long)time(NULL));
    const char *fields[] = {"status", "stage", "updated", "error"};
    const char *values[] = {status, stage, updated, error_message};
    int nfields = error_message ? 4 : 3;
    if (job_live_set(hk->redis, hk->cfg->redis_prefix, job_id, nfields, fields, values,
                     finished ? hk->cfg->job_done_ttl_s : QUEUE_JOB_TTL_S, ebuf, sizeof ebuf) != 0)
        log_event(LOG_WARN, job_id, "housekeeping: could not update the live hash: %s", ebuf);
}

/* One running job as step_leases reads it. */
struct running_job {
    const char *id, *worker_id, *model_type, *machine_id, *queue_name;
    int attempts, progress;
    long long quiet_s; /* since the attempt started or last beat in PostgreSQL */
    long long run_s;   /* since the attempt started */
};

/* The job's lease is gone (or names another attempt): settle the attempt.
 * Run longer than the timeout → failed with the timeout message; attempts
 * used up → failed and dead-lettered; else back to pending and the queue.
 * ENMS_ECONFLICT from the compare-and-set means someone else settled it. */
static int settle_lost(struct hk *hk, const struct running_job *job)
{
    char msg[512], ebuf[512];
    const char *w = job->worker_id[0] ? job->worker_id : "(unknown)";
    struct job_event ev = {.job_id = job->id,
                           .model_type = job->model_type,
                           .machine_id = job->machine_id,
                           .worker_id = job->worker_id[0] ? job->worker_id : NULL,
                           .attempt = job->attempts,
                           .progress_pct = job->progress};
    int rc;

    if (job->run_s > hk->cfg->job_timeout_s || job->attempts >= hk->cfg->max_attempts) {
        int timed_out = job->run_s > hk->cfg->job_timeout_s;
        if (timed_out)
            snprintf(msg, sizeof msg, "timed out after %lld s (worker %s went silent)", job->run_s,
                     w);
        else
            snprintf(msg, sizeof msg, "failed after %d attempts: worker lost (%s)", job->attempts,
                     w);
        rc = jobs_finish(hk->pg, job->id, job->attempts, "failed", msg, NULL, ebuf, sizeof ebuf);
        if (rc == ENMS_ECONFLICT) {
            log_event(LOG_INFO, job->id, "housekeeping: already settled: %s", ebuf);
            return ENMS_OK;
        }
        if (rc != ENMS_OK)
            return enms_fail(hk->err, hk->errlen, rc, "%s", ebuf);
        if (jobs_alert_failed(hk->pg, job->id, msg, ebuf, sizeof ebuf) != ENMS_OK)
            log_event(LOG_ERROR, job->id, "housekeeping: could not record the alert: %s", ebuf);
        if (!timed_out && (rc = dead_letter_push(hk->redis, hk->cfg->redis_prefix, job->id, ebuf,
                                                 sizeof ebuf)) != ENMS_OK) {
            log_event(LOG_ERROR, job->id, "housekeeping: failed but not dead-lettered: %s", ebuf);
            return enms_fail(hk->err, hk->errlen, rc, "%s", ebuf);
        }
        if (timed_out)
            hk->stats->timed_out++;
        else
            hk->stats->dead_lettered++;
        log_event(LOG_INFO, job->id, "housekeeping: attempt %d failed: %s%s", job->attempts, msg,
                  timed_out ? "" : "; dead-lettered");
        ev.event = "training.failed";
        ev.status = "failed";
        ev.stage = "failed";
        ev.error_message = msg;
        live_update(hk, job->id, "failed", "failed", msg, 1);
    } else {
        snprintf(msg, sizeof msg, "lease expired: worker %s lost", w);
        rc = jobs_release(hk->pg, job->id, job->attempts, msg, ebuf, sizeof ebuf);
        if (rc == ENMS_ECONFLICT) {
            log_event(LOG_INFO, job->id, "housekeeping: already settled: %s", ebuf);
            return ENMS_OK;
        }
        if (rc != ENMS_OK)
            return enms_fail(hk->err, hk->errlen, rc, "%s", ebuf);
        /* Pending in PostgreSQL now: should the push fail, re-dispatch
         * pushes it once the grace period has passed. */
        rc = queue_push(hk->redis, hk->cfg->redis_prefix, job->queue_name, job->id, ebuf,
                        sizeof ebuf);
        if (rc != ENMS_OK)
            return enms_fail(hk->err, hk->errlen, rc, "%s", ebuf);
        hk->stats->requeued++;
        log_event(LOG_INFO, job->id, "housekeeping: %s after attempt %d; back on queue %s", msg,
                  job->attempts, job->queue_name);
        ev.event = "training.requeued";
        ev.status = "pending";
        ev.stage = msg;
        ev.progress_pct = 0;
        live_update(hk, job->id, "pending", msg, NULL, 0);
    }
    if (job->worker_id[0] && (rc = queue_ack(hk->redis, hk->cfg->redis_prefix, job->worker_id,
                                             job->id, ebuf, sizeof ebuf)) != ENMS_OK)
        return enms_fail(hk->err, hk->errlen, rc, "%s", ebuf);
    publish(hk, &ev);
    return ENMS_OK;
}

/* Lease expiry, and timeouts of silent workers: running jobs whose lease
 * is gone, quietest first (so the bound of 1000 per pass never hides a lost
 * job behind healthy ones). A job that started or beat less than a
 * heartbeat TTL ago is left alone, so the gap between jobs_start and
 * lease_acquire is never mistaken for a loss. A job past the timeout whose
 * lease is alive is its worker's business (the runner stops it); this pass
 * only notes it. */
static int step_leases(struct hk *hk)
{
    char holder[256], expect[256], ebuf[512];
    int rc = ENMS_OK;
    PGresult *res =
        pg_exec(hk->pg, PGRES_TUPLES_OK,
                "SELECT id, attempts, COALESCE(worker_id, ''), model_type, machine_id, queue_name, "
                "progress, "
                "EXTRACT(EPOCH FROM now() - COALESCE(GREATEST(training_start, heartbeat_at), "
                "updated_at))::bigint, "
                "EXTRACT(EPOCH FROM now() - COALESCE(training_start, updated_at))::bigint "
                "FROM model_training_history WHERE training_status = 'running' "
                "ORDER BY training_start LIMIT 1000",
                0, NULL, hk->err, hk->errlen);
    if (!res)
        return ENMS_EDB;
    for (int i = 0; i < PQntuples(res) && i < HK_MAX_JOBS; i++) {
        struct running_job job = {
            .id = PQgetvalue(res, i, 0),
            .attempts = atoi(PQgetvalue(res, i, 1)),
            .worker_id = PQgetvalue(res, i, 2),
            .model_type = PQgetvalue(res, i, 3),
            .machine_id = PQgetvalue(res, i, 4),
            .queue_name = PQgetvalue(res, i, 5),
            .progress = atoi(PQgetvalue(res, i, 6)),
            .quiet_s = strtoll(PQgetvalue(res, i, 7), NULL, 10),
            .run_s = strtoll(PQgetvalue(res, i, 8), NULL, 10),
        };
        if (job.quiet_s < hk->cfg->heartbeat_ttl_s)
            continue;
        rc = lease_get(hk->redis, hk->cfg->redis_prefix, job.id, holder, sizeof holder, ebuf,
                       sizeof ebuf);
        if (rc == ENMS_OK) {
            snprintf(expect, sizeof expect, "%s|%d", job.worker_id, job.attempts);
            if (strcmp(holder, expect) == 0) {
                if (job.run_s > (long long)hk->cfg->job_timeout_s + hk->cfg->heartbeat_ttl_s)
                    log_event(LOG_WARN, job.id,
                              "housekeeping: running %lld s, past the %d s timeout, but "
                              "worker %s still holds the lease; its runner enforces the timeout",
                              job.run_s, hk->cfg->job_timeout_s, job.worker_id);
                continue;
            }
            /* A lease naming another attempt cannot be renewed by this
             * one: its worker has lost the job as surely as on expiry. */
            log_event(LOG_INFO, job.id, "housekeeping: lease names %s, not %s", holder, expect);
        } else if (rc != ENMS_ENOTFOUND) {
            rc = enms_fail(hk->err, hk->errlen, rc, "%s", ebuf);
            goto done;
        }
        rc = settle_lost(hk, &job);
        if (rc != ENMS_OK)
            goto done;
    }
    rc = ENMS_OK;
done:
    PQclear(res);
    return rc;
}

/* Orphans: processing lists of workers whose hash expired. An entry whose
 * job no longer runs under that worker is removed; one still running there
 * is left to step_leases, which settles it when its lease expires. A dead
 * worker with an empty list leaves the workers set. */
static int step_orphans(struct hk *hk)
{
    struct names workers = {0};
    struct idset held = {0};
    char key[QUEUE_KEY_MAX], setkey[QUEUE_KEY_MAX], ebuf[512];
    int lookups = 0;
    int rc = known_workers(hk, &workers);
    if (rc != ENMS_OK)
        goto done;
    if ((rc = make_key(hk, setkey, "workers", NULL)) != ENMS_OK)
        goto done;
    for (size_t w = 0; w < workers.count; w++) {
        const char *wid = workers.names[w];
        rc = worker_alive(hk, wid);
        if (rc < 0)
            goto done;
        if (rc == 1)
            continue;
        if ((rc = make_key(hk, key, "processing", wid)) != ENMS_OK)
            goto done;
        int truncated = 0;
        idset_free(&held);
        if ((rc = read_list(hk, key, HK_MAX_LIST, &held, &truncated)) != ENMS_OK)
            goto done;
        for (size_t i = 0; i < held.count && lookups < HK_MAX_JOBS; i++, lookups++) {
            const char *id = held.ids + i * IDSET_STRIDE;
            const char *params[] = {id, wid};
            PGresult *res = pg_exec(hk->pg, PGRES_TUPLES_OK,
                                    "SELECT 1 FROM model_training_history WHERE id = $1::uuid "
                                    "AND training_status = 'running' AND worker_id = $2",
                                    2, params, hk->err, hk->errlen);
            if (!res) {
                rc = ENMS_EDB;
                goto done;
            }
            int still_running = PQntuples(res) > 0;
            PQclear(res);
            if (still_running)
                continue;
            if ((rc = queue_ack(hk->redis, hk->cfg->redis_prefix, wid, id, ebuf, sizeof ebuf)) !=
                ENMS_OK) {
                rc = enms_fail(hk->err, hk->errlen, rc, "%s", ebuf);
                goto done;
            }
            hk->stats->orphans_removed++;
            log_event(LOG_INFO, id,
                      "housekeeping: removed from the processing list of gone "
                      "worker %s",
                      wid);
        }
        long long left = 0;
        if ((rc = queue_length(hk->redis, key, &left, ebuf, sizeof ebuf)) != ENMS_OK) {
            rc = enms_fail(hk->err, hk->errlen, rc, "%s", ebuf);
            goto done;
        }
        if (left == 0) {
            redisReply *r = redisCommand(hk->redis, "SREM %s %s", setkey, wid);
            if (!r || r->type != REDIS_REPLY_INTEGER) {
                rc = redis_fail(hk, r, "SREM");
                if (r)
                    freeReplyObject(r);
                goto done;
            }
            if (r->integer > 0)
                log_info("housekeeping: worker %s is gone; removed from the workers set", wid);
            freeReplyObject(r);
        }
    }
    rc = ENMS_OK;
done:
    idset_free(&held);
    names_free(&workers);
    return rc;
}

/* Writes ids as a PostgreSQL array literal "{id,id,...}". Returns a string
 * the caller frees with free(), or NULL when out of memory. */
static char *idset_array_literal(const struct idset *s)
{
    char *text = malloc(s->count * IDSET_STRIDE + 3);
    if (!text)
        return NULL;
    size_t n = 0;
    text[n++] = '{';
    for (size_t i = 0; i < s->count; i++) {
        if (i > 0)
            text[n++] = ',';
        memcpy(text + n, s->ids + i * IDSET_STRIDE, QUEUE_ID_LEN);
        n += QUEUE_ID_LEN;
    }
    text[n++] = '}';
    text[n] = '\0';
    return text;
}

/* Re-dispatch: pending jobs untouched for the grace period that sit in no
 * Redis list. The ids of every queue list and then every processing list
 * are read first (in that order, so a job moving from a queue to a
 * processing list in between is seen in one of them) and PostgreSQL is
 * asked for pending jobs outside that set: a backlog of queued jobs can
 * never hide the missing ones behind the per-pass bound. Should Redis hold
 * more ids than HK_MAX_IDS, the set is partial and each candidate is also
 * looked up in its queue. A candidate's status is checked once more just
 * before the push; a duplicate that slips through anyway is harmless, as
 * jobs_start lets only one claim run it. */
static int step_redispatch(struct hk *hk)
{
    struct names queues = {0}, workers = {0};
    struct idset inredis = {0};
    PGresult *res = NULL;
    char *known = NULL; /* array literal of inredis; free() */
    char key[QUEUE_KEY_MAX], grace[16], ebuf[512];
    int partial = 0, truncated = 0, rc;

    if ((rc = scan_names(hk, "queue", &queues)) != ENMS_OK ||
        (rc = known_workers(hk, &workers)) != ENMS_OK)
        goto done;
    for (size_t i = 0; i < queues.count + workers.count && !partial; i++) {
        int is_queue = i < queues.count;
        const char *name = is_queue ? queues.names[i] : workers.names[i - queues.count];
        if ((rc = make_key(hk, key, is_queue ? "queue" : "processing", name)) != ENMS_OK ||
            (rc = read_list(hk, key, HK_MAX_IDS - inredis.count, &inredis, &truncated)) != ENMS_OK)
            goto done;
        partial = truncated || inredis.count >= HK_MAX_IDS;
    }
    if (!(known = idset_array_literal(&inredis))) {
        rc = enms_fail(hk->err, hk->errlen, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    snprintf(grace, sizeof grace, "%d", hk->cfg->redispatch_grace_s);
    const char *params[] = {grace, known};
    res = pg_exec(hk->pg, PGRES_TUPLES_OK,
                  "SELECT id, queue_name, model_type, machine_id, attempts "
                  "FROM model_training_history WHERE training_status = 'pending' "
                  "AND updated_at < now() - $1::int * interval '1 second' "
                  "AND id <> ALL ($2::uuid[]) ORDER BY created_at LIMIT 1000",
                  2, params, hk->err, hk->errlen);
    if (!res) {
        rc = ENMS_EDB;
        goto done;
    }
    for (int i = 0; i < PQntuples(res) && i < HK_MAX_JOBS; i++) {
        const char *id = PQgetvalue(res, i, 0);
        const char *qname = PQgetvalue(res, i, 1);
        char status[JOBS_STATUS_SIZE];
        if (partial) {
            if ((rc = make_key(hk, key, "queue", qname)) != ENMS_OK)
                goto done;
            int queued = queue_contains(hk->redis, key, id, ebuf, sizeof ebuf);
            if (queued < 0) {
                rc = enms_fail(hk->err, hk->errlen, queued, "%s", ebuf);
                goto done;
            }
            if (queued)
                continue;
        }
        rc = jobs_status(hk->pg, id, status, NULL, ebuf, sizeof ebuf);
        if (rc == ENMS_ENOTFOUND || (rc == ENMS_OK && strcmp(status, "pending") != 0))
            continue;
        if (rc != ENMS_OK || (rc = queue_push(hk->redis, hk->cfg->redis_prefix, qname, id, ebuf,
                                              sizeof ebuf)) != ENMS_OK) {
            rc = enms_fail(hk->err, hk->errlen, rc, "%s", ebuf);
            goto done;
        }
        hk->stats->redispatched++;
        log_event(LOG_INFO, id,
                  "housekeeping: pending for over %d s but in no Redis list; pushed to queue %s "
                  "again",
                  hk->cfg->redispatch_grace_s, qname);
        struct job_event ev = {.event = "training.redispatched",
                               .job_id = id,
                               .status = "pending",
                               .stage = "redispatched",
                               .model_type = PQgetvalue(res, i, 2),
                               .machine_id = PQgetvalue(res, i, 3),
                               .attempt = atoi(PQgetvalue(res, i, 4))};
        publish(hk, &ev);
    }
    rc = ENMS_OK;
done:
    if (res)
        PQclear(res);
    free(known);
    idset_free(&inredis);
    names_free(&queues);
    names_free(&workers);
    return rc;
}

int housekeeping_pass(PGconn *pg, redisContext *redis, const struct enms_config *cfg,
                      struct housekeeping_stats *stats, char *err, size_t errlen)
{
    struct hk hk = {pg, redis, cfg, stats, err, errlen};
    int rc;
    memset(stats, 0, sizeof *stats);
    if (!pg || !redis)
        return enms_fail(err, errlen, ENMS_EINVAL, "housekeeping: not connected");
    /* Orphans before re-dispatch: a pending job stranded in a dead worker's
     * processing list (killed between claim and start) is freed and pushed
     * in the same pass. */
    if ((rc = step_leases(&hk)) != ENMS_OK || (rc = step_orphans(&hk)) != ENMS_OK ||
        (rc = step_redispatch(&hk)) != ENMS_OK)
        return rc;
    /* A/B tests end at their end time whatever else happens (also when an
     * operator runs one pass with `enmsctl housekeeping`). */
    char why[256];
    if (ab_tests_finish_expired(pg, why, sizeof why) != ENMS_OK)
        log_warn("housekeeping: a/b tests not finished: %s", why);
    return ENMS_OK;
}

/* ---- monitoring schedules ------------------------------------------------ */

/* Appends {job_id or existing job_id, machine_id, model_type} to arr (may
 * be NULL). 0 or -1 when out of memory. */
static int job_item(cJSON *arr, const char *job_id, const char *machine_id, const char *model_type)
{
    cJSON *o;
    if (!arr)
        return 0;
    if (!(o = cJSON_CreateObject()) || !cJSON_AddStringToObject(o, "job_id", job_id) ||
        !cJSON_AddStringToObject(o, "machine_id", machine_id) ||
        !cJSON_AddStringToObject(o, "model_type", model_type) || !cJSON_AddItemToArray(arr, o)) {
        cJSON_Delete(o);
        return -1;
    }
    return 0;
}

/* Creates (and pushes) one job per row of res: column 0 the machine,
 * column 1 the model type. Conflicts (one already active) and machines
 * deleted meanwhile are skipped. */
static int create_jobs(PGconn *pg, redisContext *redis, const struct enms_config *cfg,
                       const PGresult *res, const struct job_request *base, cJSON *created,
                       cJSON *skipped, int *count, char *err, size_t errlen)
{
    for (int i = 0; i < PQntuples(res); i++) {
        char job_id[JOBS_ID_SIZE] = "", existing[JOBS_ID_SIZE] = "", ebuf[256];
        struct job_request req = *base;
        req.machine_id = PQgetvalue(res, i, 0);
        req.model_type = PQgetvalue(res, i, 1);
        int rc = jobs_create(pg, &req, job_id, existing, err, errlen);
        if (rc == ENMS_ECONFLICT) {
            if (job_item(skipped, existing, req.machine_id, req.model_type))
                return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
            continue;
        }
        if (rc == ENMS_ENOTFOUND)
            continue;
        if (rc != ENMS_OK)
            return rc;
        if (job_item(created, job_id, req.machine_id, req.model_type))
            return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        if (count)
            (*count)++;
        log_event(LOG_INFO, job_id, "%s %s job for machine %s (%s)", req.trigger_type,
                  req.job_kind ? req.job_kind : "train", req.machine_id, req.model_type);
        /* Pending in PostgreSQL is the record: a failed push is repaired by
         * the re-dispatch pass. */
        if (redis && queue_push(redis, cfg->redis_prefix, QUEUE_DEFAULT, job_id, ebuf,
                                sizeof ebuf) != ENMS_OK)
            log_event(LOG_WARN, job_id, "created but not pushed (%s); re-dispatch will", ebuf);
    }
    return ENMS_OK;
}

int housekeeping_monitoring_jobs(PGconn *pg, redisContext *redis, const struct enms_config *cfg,
                                 const char *job_kind, const char *machine_id,
                                 const char *model_type, const char *trigger_type,
                                 const char *triggered_by, const char *params_json, cJSON *created,
                                 cJSON *skipped, int *count, char *err, size_t errlen)
{
    int score = strcmp(job_kind, "score") == 0;
    const char *params[] = {machine_id, score ? "anomaly" : model_type};
    if (count)
        *count = 0;
    PGresult *res = pg_exec(pg, PGRES_TUPLES_OK,
                            "SELECT machine_id::text, model_type FROM model_versions "
                            "WHERE is_active AND model_type <> 'probe' "
                            "AND ($1::uuid IS NULL OR machine_id = $1::uuid) "
                            "AND ($2::text IS NULL OR model_type = $2) "
                            "ORDER BY machine_id, model_type LIMIT 10000",
                            2, params, err, errlen);
    if (!res)
        return ENMS_EDB;
    struct job_request base = {.trigger_type = trigger_type,
                               .reason = score ? "anomaly scoring of new readings"
                                               : "evaluation on new readings",
                               .triggered_by = triggered_by,
                               .params_json = params_json,
                               .job_kind = job_kind};
    int rc = create_jobs(pg, redis, cfg, res, &base, created, skipped, count, err, errlen);
    PQclear(res);
    return rc;
}

/* Whether schedule `name` is due: SET <p>:schedule:<name> NX EX ttl_s, so
 * one process in all the workers runs it per interval. */
static int schedule_due(struct hk *hk, const char *name, int ttl_s, int *due)
{
    char key[QUEUE_KEY_MAX];
    int rc = make_key(hk, key, "schedule", name);
    if (rc != ENMS_OK)
        return rc;
    redisReply *r = redisCommand(hk->redis, "SET %s %s NX EX %d", key, hk->cfg->worker_id, ttl_s);
    if (!r || (r->type != REDIS_REPLY_STATUS && r->type != REDIS_REPLY_NIL)) {
        rc = redis_fail(hk, r, "SET schedule");
        if (r)
            freeReplyObject(r);
        return rc;
    }
    *due = r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    return ENMS_OK;
}

/* Forgets that schedule `name` ran, so the next pass retries it. */
static void schedule_retry(struct hk *hk, const char *name)
{
    char key[QUEUE_KEY_MAX];
    if (make_key(hk, key, "schedule", name) != ENMS_OK)
        return;
    redisReply *r = redisCommand(hk->redis, "DEL %s", key);
    if (r)
        freeReplyObject(r);
}

/* Scheduled retrains of model_type: machines whose active version is older
 * than interval_s and that had no scheduled retrain within it (so a
 * version that is not activated, under the manual policy, is not retrained
 * on every pass). */
static int scheduled_retrains(struct hk *hk, const char *model_type, int interval_s)
{
    char secs[16];
    snprintf(secs, sizeof secs, "%d", interval_s);
    const char *params[] = {model_type, secs};
    PGresult *res = pg_exec(hk->pg, PGRES_TUPLES_OK,
                            "SELECT v.machine_id::text, v.model_type FROM model_versions v "
                            "WHERE v.is_active AND v.model_type = $1 "
                            "AND v.created_at < now() - make_interval(secs => $2::int) "
                            "AND NOT EXISTS (SELECT 1 FROM model_training_history h "
                            "  WHERE h.machine_id = v.machine_id AND h.model_type = v.model_type "
                            "  AND h.job_kind = 'train' AND h.trigger_type = 'scheduled' "
                            "  AND h.created_at > now() - make_interval(secs => $2::int)) "
                            "ORDER BY v.machine_id LIMIT 1000",
                            2, params, hk->err, hk->errlen);
    if (!res)
        return ENMS_EDB;
    char reason[96];
    snprintf(reason, sizeof reason, "scheduled retrain: active version older than %d s",
             interval_s);
    struct job_request base = {.trigger_type = "scheduled",
                               .reason = reason,
                               .triggered_by = "housekeeping",
                               .job_kind = "train"};
    int n = 0;
    int rc =
        create_jobs(hk->pg, hk->redis, hk->cfg, res, &base, NULL, NULL, &n, hk->err, hk->errlen);
    hk->stats->retrains_scheduled += n;
    PQclear(res);
    return rc;
}

int housekeeping_schedules(PGconn *pg, redisContext *redis, const struct enms_config *cfg,
                           struct housekeeping_stats *stats, char *err, size_t errlen)
{
    struct hk hk = {pg, redis, cfg, stats, err, errlen};
    const struct {
        const char *name, *model_type;
        int interval_s;
    } retrains[] = {
        {"retrain_baseline", "baseline", cfg->retrain_baseline_s},
        {"retrain_anomaly", "anomaly", cfg->retrain_anomaly_s},
        {"retrain_forecast_arima", "forecast_arima", cfg->retrain_forecast_s},
    };
    int due = 0, n = 0, rc;
    if (!pg || !redis)
        return enms_fail(err, errlen, ENMS_EINVAL, "housekeeping: not connected");

    if (cfg->eval_interval_s > 0) {
        if ((rc = schedule_due(&hk, "evaluate", cfg->eval_interval_s, &due)) != ENMS_OK)
            return rc;
        if (due) {
            rc = housekeeping_monitoring_jobs(pg, redis, cfg, "evaluate", NULL, NULL, "scheduled",
                                              "housekeeping", NULL, NULL, NULL, &n, err, errlen);
            stats->evaluations_scheduled += n;
            if (rc != ENMS_OK) {
                schedule_retry(&hk, "evaluate");
                return rc;
            }
        }
    }
    if (cfg->score_interval_s > 0) {
        if ((rc = schedule_due(&hk, "score", cfg->score_interval_s, &due)) != ENMS_OK)
            return rc;
        if (due) {
            rc = housekeeping_monitoring_jobs(pg, redis, cfg, "score", NULL, "anomaly", "scheduled",
                                              "housekeeping", NULL, NULL, NULL, &n, err, errlen);
            stats->scorings_scheduled += n;
            if (rc != ENMS_OK) {
                schedule_retry(&hk, "score");
                return rc;
            }
        }
    }
    for (size_t i = 0; i < sizeof retrains / sizeof retrains[0]; i++) {
        if (retrains[i].interval_s <= 0)
            continue;
        /* Checked often (versions age between checks), at most every 5
         * minutes; the SQL guard keeps it to one retrain per interval. */
        int ttl = retrains[i].interval_s < 300 ? retrains[i].interval_s : 300;
        if ((rc = schedule_due(&hk, retrains[i].name, ttl, &due)) != ENMS_OK)
            return rc;
        if (due && (rc = scheduled_retrains(&hk, retrains[i].model_type, retrains[i].interval_s)) !=
                       ENMS_OK) {
            schedule_retry(&hk, retrains[i].name);
            return rc;
        }
    }
    return ENMS_OK;
}

/* Deletes the lock only while holder has it, so a stopping worker hands
 * housekeeping over at once instead of after the lock's TTL. */
static void lock_release(redisContext *redis, const char *prefix, const char *holder)
{
    static const char script[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                 "return redis.call('DEL', KEYS[1]) else return 0 end";
    char key[QUEUE_KEY_MAX];
    if (queue_key(key, sizeof key, prefix, "lock", "housekeeping") != ENMS_OK)
        return;
    redisReply *r = redisCommand(redis, "EVAL %s 1 %s %s", script, key, holder);
    if (r)
        freeReplyObject(r);
}

/* Sleeps ms in short slices; returns early once *stop is set. */
static void sleep_unless_stopped(atomic_int *stop, long ms)
{
    for (long slept = 0; slept < ms && !atomic_load(stop); slept += HK_SLICE_MS) {
        struct timespec slice = {0, HK_SLICE_MS * 1000000L};
        nanosleep(&slice, NULL);
    }
}

void *housekeeping_thread(void *argp)
{
    const struct housekeeping_thread_args *args = argp;
    const struct enms_config *cfg = args->cfg;
    PGconn *pg = NULL;          /* owned here; PQfinish at the end */
    redisContext *redis = NULL; /* owned here; redisFree at the end */
    struct housekeeping_stats stats;
    char err[512];
    int backoff_s = 1, holding = 0;
    unsigned int seed = (unsigned int)getpid() ^ (unsigned int)time(NULL);
    int lock_ttl_ms = 3 * cfg->housekeeping_interval_s * 1000;

    while (!atomic_load(args->stop)) {
        long wait_ms = cfg->housekeeping_interval_s * 1000L;
        if (pg_ensure(&pg, cfg->pg_dsn, cfg->connect_timeout_ms, "enms-housekeeping", err,
                      sizeof err) != ENMS_OK ||
            redis_ensure(&redis, args->redis_url, cfg->connect_timeout_ms, cfg->io_timeout_ms, err,
                         sizeof err) != ENMS_OK) {
            /* Jitter spreads the reconnects of many workers after an
             * outage. */
            wait_ms = backoff_s * 500L + rand_r(&seed) % (backoff_s * 500L + 1);
            log_warn("housekeeping: %s (retrying in %ld ms)", err, wait_ms);
            backoff_s = backoff_s * 2 > HK_BACKOFF_MAX_S ? HK_BACKOFF_MAX_S : backoff_s * 2;
            holding = 0;
            sleep_unless_stopped(args->stop, wait_ms);
            continue;
        }
        backoff_s = 1;
        int rc = housekeeping_lock(redis, cfg->redis_prefix, args->holder_id, lock_ttl_ms, err,
                                   sizeof err);
        if (rc == ENMS_OK) {
            if (!holding)
                log_info("housekeeping: %s holds the lock", args->holder_id);
            holding = 1;
            rc = housekeeping_pass(pg, redis, cfg, &stats, err, sizeof err);
            if (rc != ENMS_OK)
                log_warn("housekeeping: pass stopped: %s", err);
            if (housekeeping_schedules(pg, redis, cfg, &stats, err, sizeof err) != ENMS_OK)
                log_warn("housekeeping: schedules stopped: %s", err);
            if (stats.evaluations_scheduled || stats.scorings_scheduled || stats.retrains_scheduled)
                log_info("housekeeping: scheduled %d evaluations, %d scorings, %d retrains",
                         stats.evaluations_scheduled, stats.scorings_scheduled,
                         stats.retrains_scheduled);
            if (stats.requeued || stats.dead_lettered || stats.timed_out || stats.redispatched ||
                stats.orphans_removed)
                log_info("housekeeping: requeued %d, dead-lettered %d, timed out %d, "
                         "redispatched %d, orphans removed %d",
                         stats.requeued, stats.dead_lettered, stats.timed_out, stats.redispatched,
                         stats.orphans_removed);
        } else if (rc == ENMS_ECONFLICT) {
            if (holding)
                log_info("housekeeping: lock taken over by another process");
            holding = 0;
        } else {
            log_warn("housekeeping: %s", err);
            holding = 0;
        }
        sleep_unless_stopped(args->stop, wait_ms);
    }
    if (holding && redis && redis->err == 0)
        lock_release(redis, cfg->redis_prefix, args->holder_id);
    if (redis)
        redisFree(redis);
    if (pg)
        PQfinish(pg);
    return NULL;
}
