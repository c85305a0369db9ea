/* queue_ops.c - the enmsctl subcommands that change jobs: `cancel` (any
 * pending or running job), `requeue` (failed jobs back to pending, one by
 * id or the whole dead-letter list) and `housekeeping` (one recovery pass
 * now).
 *
 * PostgreSQL is changed first, with a compare-and-set, and Redis follows:
 * should the Redis half fail, housekeeping's re-dispatch repairs it, as it
 * does for the API. The failed -> pending transition of requeue is in
 * common/job_ops.c, shared with the API's requeue endpoint. */
#include "ctl.h"
#include "../common/error.h"
#include "../common/jobs.h"
#include "../common/job_ops.h"
#include "../common/pg.h"
#include "../common/events.h"
#include "../common/queue.h"
#include "../worker/housekeeping.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define REQUEUE_MAX 1000 /* dead-letter entries handled by one `requeue --all` */

/* ---- cancel ---- */

static void cancel_usage(FILE *out)
{
    fprintf(out, "usage: enmsctl cancel JOB_ID\n\n"
                 "Cancels a pending job (it will never run) or a running one (its worker stops\n"
                 "within about a second and drops its partial work). Prints the status the job\n"
                 "had. Exit status 1 when the job had already finished or does not exist.\n");
}

int ctl_cancel(const struct enms_config *cfg, int argc, char **argv)
{
    struct ctl_conn conn = {0};
    struct job_facts facts;
    char err[512], prev[JOBS_STATUS_SIZE] = "", key[QUEUE_KEY_MAX];
    int rc;
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        cancel_usage(stdout);
        return ENMS_OK;
    }
    if (argc != 2 || !queue_is_uuid(argv[1], strlen(argv[1]))) {
        fprintf(stderr, "enmsctl cancel: %s\n",
                argc != 2 ? "expected one JOB_ID" : "JOB_ID must be a uuid");
        cancel_usage(stderr);
        return ENMS_EINVAL;
    }
    const char *id = argv[1];
    if ((rc = ctl_connect(cfg, 1, 0, "enmsctl-cancel", &conn, err, sizeof err)) != ENMS_OK)
        goto done;
    rc = jobs_cancel(conn.pg, id, prev, err, sizeof err);
    if (rc == ENMS_ECONFLICT) {
        printf("job %s: already %s, not cancelled\n", id, prev);
        snprintf(err, sizeof err, "job %s is already %s", id, prev);
        goto done;
    }
    if (rc != ENMS_OK)
        goto done;
    printf("job %s: %s -> cancelled\n", id, prev);

    /* PostgreSQL has it; Redis only makes the stop faster and the queue
     * tidier, so its failures are warnings. A running job's worker also
     * learns of the cancel from its next heartbeat's compare-and-set. */
    char rerr[512];
    struct ctl_conn r = {0};
    if (ctl_connect(cfg, 0, 1, "enmsctl-cancel", &r, rerr, sizeof rerr) != ENMS_OK) {
        fprintf(stderr, "enmsctl cancel: warning: %s; the worker notices at its next heartbeat\n",
                rerr);
        goto done;
    }
    conn.redis = r.redis;
    if (job_facts_read(conn.pg, id, &facts, rerr, sizeof rerr) != ENMS_OK) {
        fprintf(stderr, "enmsctl cancel: warning: %s\n", rerr);
        goto done;
    }
    if (strcmp(prev, "running") == 0) {
        if (cancel_flag_set(conn.redis, cfg->redis_prefix, id, rerr, sizeof rerr) != ENMS_OK)
            fprintf(stderr, "enmsctl cancel: warning: cancel flag not set: %s\n", rerr);
    } else if (queue_key(key, sizeof key, cfg->redis_prefix, "queue", facts.queue_name) ==
                   ENMS_OK &&
               job_list_remove(conn.redis, key, id, rerr, sizeof rerr) != ENMS_OK) {
        fprintf(stderr, "enmsctl cancel: warning: %s\n", rerr);
    }
    if (job_announce(conn.redis, cfg->redis_prefix, "training.cancelled", id, "cancelled",
                     "cancelled", &facts, cfg->job_done_ttl_s, rerr, sizeof rerr) != ENMS_OK)
        fprintf(stderr, "enmsctl cancel: warning: %s\n", rerr);
done:
    if (rc != ENMS_OK)
        fprintf(stderr, "enmsctl cancel: %s\n", err);
    ctl_disconnect(&conn);
    return rc;
}

/* ---- requeue ---- */

static void requeue_usage(FILE *out)
{
    fprintf(out,
            "usage: enmsctl requeue JOB_ID | --all\n\n"
            "Puts a failed job back to pending with its attempts reset to 0, removes it\n"
            "from the dead-letter list and pushes it onto its queue. --all does so for\n"
            "every job in the dead-letter list (at most %d per run); entries whose job is\n"
            "no longer failed are dropped from the list.\n",
            REQUEUE_MAX);
}

/* failed -> pending for one job (job_ops.h), reported on stdout. */
static int requeue_one(const struct enms_config *cfg, struct ctl_conn *conn, const char *id,
                       char *err, size_t errlen)
{
    struct job_facts facts;
    int rc = job_requeue(conn->pg, conn->redis, cfg->redis_prefix, id, "requeued by operator",
                         &facts, err, errlen);
    if (rc == ENMS_OK)
        printf("job %s: failed -> pending, pushed to queue %s\n", id, facts.queue_name);
    return rc;
}

/* Every entry of the dead-letter list, oldest first. A job that is no
 * longer failed (requeued by id, or finished after all) is a stale entry
 * and is dropped from the list. */
static int requeue_all(const struct enms_config *cfg, struct ctl_conn *conn, char *err,
                       size_t errlen)
{
    char key[QUEUE_KEY_MAX], one[512], status[JOBS_STATUS_SIZE];
    int requeued = 0, skipped = 0, dropped = 0, rc = ENMS_OK;
    if (queue_key(key, sizeof key, cfg->redis_prefix, "dead", NULL) != ENMS_OK)
        return enms_fail(err, errlen, ENMS_ETOOBIG, "redis key too long");
    redisReply *r = redisCommand(conn->redis, "LRANGE %s %d -1", key, -REQUEUE_MAX);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        rc = enms_fail(err, errlen, ENMS_EREDIS, "redis: LRANGE: %s",
                       r && r->type == REDIS_REPLY_ERROR ? r->str : conn->redis->errstr);
        goto done;
    }
    /* LPUSH puts the newest first: walk from the end for oldest first. */
    for (size_t k = r->elements; k-- > 0;) {
        const redisReply *e = r->element[k];
        char id[QUEUE_ID_LEN + 1];
        if (e->type != REDIS_REPLY_STRING)
            continue;
        if (!queue_is_uuid(e->str, e->len)) {
            redisReply *d = redisCommand(conn->redis, "LREM %s 0 %b", key, e->str, e->len);
            if (d)
                freeReplyObject(d);
            dropped++;
            continue;
        }
        memcpy(id, e->str, QUEUE_ID_LEN);
        id[QUEUE_ID_LEN] = '\0';
        int one_rc = requeue_one(cfg, conn, id, one, sizeof one);
        if (one_rc == ENMS_OK) {
            requeued++;
            continue;
        }
        int st_rc = ENMS_OK;
        status[0] = '\0';
        if (one_rc == ENMS_ECONFLICT)
            st_rc = jobs_status(conn->pg, id, status, NULL, one, sizeof one);
        if (one_rc == ENMS_ECONFLICT && st_rc != ENMS_OK && st_rc != ENMS_ENOTFOUND) {
            rc = enms_fail(err, errlen, st_rc, "%s", one);
            goto done;
        }
        if (one_rc == ENMS_ECONFLICT && strcmp(status, "failed") != 0) {
            if ((rc = job_list_remove(conn->redis, key, id, err, errlen)) != ENMS_OK)
                goto done;
            printf("job %s: %s, dropped from the dead-letter list\n", id,
                   status[0] ? status : "gone");
            dropped++;
            continue;
        }
        if (one_rc != ENMS_ECONFLICT) {
            rc = enms_fail(err, errlen, one_rc, "%s", one);
            goto done;
        }
        fprintf(stderr, "enmsctl requeue: %s\n", one);
        skipped++;
    }
    printf("requeued %d, skipped %d, dropped %d\n", requeued, skipped, dropped);
done:
    if (r)
        freeReplyObject(r);
    return rc;
}

int ctl_requeue(const struct enms_config *cfg, int argc, char **argv)
{
    struct ctl_conn conn = {0};
    char err[512];
    int rc;
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        requeue_usage(stdout);
        return ENMS_OK;
    }
    int all = argc == 2 && strcmp(argv[1], "--all") == 0;
    if (argc != 2 || (!all && !queue_is_uuid(argv[1], strlen(argv[1])))) {
        fprintf(stderr, "enmsctl requeue: %s\n",
                argc != 2 ? "expected one JOB_ID or --all" : "JOB_ID must be a uuid");
        requeue_usage(stderr);
        return ENMS_EINVAL;
    }
    if ((rc = ctl_connect(cfg, 1, 1, "enmsctl-requeue", &conn, err, sizeof err)) != ENMS_OK)
        goto done;
    rc = all ? requeue_all(cfg, &conn, err, sizeof err)
             : requeue_one(cfg, &conn, argv[1], err, sizeof err);
done:
    if (rc != ENMS_OK)
        fprintf(stderr, "enmsctl requeue: %s\n", err);
    ctl_disconnect(&conn);
    return rc;
}

/* ---- housekeeping ---- */

static void housekeeping_usage(FILE *out)
{
    fprintf(out, "usage: enmsctl housekeeping [--force] [--json]\n\n"
                 "Runs one housekeeping pass now (lease expiry, timeouts, re-dispatch of pending\n"
                 "jobs missing from Redis, processing lists of gone workers) and prints what it\n"
                 "did. It takes the housekeeping lock first; when a worker holds it, --force\n"
                 "runs anyway (every change is a compare-and-set, so two passes are safe).\n");
}

int ctl_housekeeping(const struct enms_config *cfg, int argc, char **argv)
{
    static const char release_lua[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                      "return redis.call('DEL', KEYS[1]) else return 0 end";
    struct ctl_conn conn = {0};
    struct housekeeping_stats stats = {0};
    char err[512], holder[300], host[256] = "localhost", key[QUEUE_KEY_MAX];
    int force = 0, json = 0, locked = 0, rc;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--force") == 0) {
            force = 1;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            housekeeping_usage(stdout);
            return ENMS_OK;
        } else {
            fprintf(stderr, "enmsctl housekeeping: unknown option \"%s\"\n", argv[i]);
            housekeeping_usage(stderr);
            return ENMS_EINVAL;
        }
    }
    if (gethostname(host, sizeof host - 1) != 0)
        snprintf(host, sizeof host, "localhost");
    snprintf(holder, sizeof holder, "enmsctl-%s-%ld", host, (long)getpid());
    if ((rc = ctl_connect(cfg, 1, 1, "enmsctl-housekeeping", &conn, err, sizeof err)) != ENMS_OK)
        goto done;
    rc = housekeeping_lock(conn.redis, cfg->redis_prefix, holder, 60000, err, sizeof err);
    if (rc == ENMS_OK) {
        locked = 1;
    } else if (rc == ENMS_ECONFLICT && force) {
        rc = ENMS_OK;
    } else {
        if (rc == ENMS_ECONFLICT)
            snprintf(err, sizeof err,
                     "another process holds the housekeeping lock (see enmsctl status); "
                     "--force runs the pass anyway");
        goto done;
    }
    if ((rc = housekeeping_pass(conn.pg, conn.redis, cfg, &stats, err, sizeof err)) != ENMS_OK)
        goto done;
    if (json)
        printf("{\"requeued\":%d,\"dead_lettered\":%d,\"timed_out\":%d,\"redispatched\":%d,"
               "\"orphans_removed\":%d}\n",
               stats.requeued, stats.dead_lettered, stats.timed_out, stats.redispatched,
               stats.orphans_removed);
    else
        printf("requeued         %d\ndead_lettered    %d\ntimed_out        %d\n"
               "redispatched     %d\norphans_removed  %d\n",
               stats.requeued, stats.dead_lettered, stats.timed_out, stats.redispatched,
               stats.orphans_removed);
done:
    if (locked && conn.redis && conn.redis->err == 0 &&
        queue_key(key, sizeof key, cfg->redis_prefix, "lock", "housekeeping") == ENMS_OK) {
        redisReply *r = redisCommand(conn.redis, "EVAL %s 1 %s %s", release_lua, key, holder);
        if (r)
            freeReplyObject(r);
    }
    if (rc != ENMS_OK)
        fprintf(stderr, "enmsctl housekeeping: %s\n", err);
    ctl_disconnect(&conn);
    return rc;
}
