/* queue.c - the Redis side of the job pipeline (see queue.h for the layout). */
#include "queue.h"
#include "error.h"

#include <stdio.h>
#include <string.h>

/* Extends or deletes a lease only while it still holds the caller's
 * "<worker>|<attempt>": a check-then-act that must be atomic, hence Lua. */
static const char LEASE_RENEW_LUA[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
static const char LEASE_RELEASE_LUA[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                        "return redis.call('DEL', KEYS[1]) else return 0 end";
/* Take the lock when free, or extend it when we already hold it. */
static const char LOCK_LUA[] =
    "local v = redis.call('GET', KEYS[1]) "
    "if v == false or v == ARGV[1] then "
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 else return 0 end";

int queue_key(char *buf, size_t buflen, const char *prefix, const char *kind, const char *name)
{
    int n = name ? snprintf(buf, buflen, "%s:%s:%s", prefix, kind, name)
                 : snprintf(buf, buflen, "%s:%s", prefix, kind);
    if (n < 0 || (size_t)n >= buflen)
        return ENMS_ETOOBIG;
    return ENMS_OK;
}

/* Checks a reply: NULL (I/O error, context now dead) and error replies
 * become ENMS_EREDIS with the reason. Frees nothing. */
static int reply_check(redisContext *ctx, const redisReply *reply, const char *what, char *err,
                       size_t errlen)
{
    if (!reply)
        return enms_fail(err, errlen, ENMS_EREDIS, "redis: %s: %s", what,
                         ctx->errstr[0] ? ctx->errstr : "no reply");
    if (reply->type == REDIS_REPLY_ERROR)
        return enms_fail(err, errlen, ENMS_EREDIS, "redis: %s: %s", what, reply->str);
    return ENMS_OK;
}

/* Runs a command whose reply only needs checking. */
static int command_ok(redisContext *ctx, redisReply *reply, const char *what, char *err,
                      size_t errlen)
{
    int rc = reply_check(ctx, reply, what, err, errlen);
    if (reply)
        freeReplyObject(reply);
    return rc;
}

static int key_or_fail(char *buf, size_t buflen, const char *prefix, const char *kind,
                       const char *name, char *err, size_t errlen)
{
    if (queue_key(buf, buflen, prefix, kind, name) != ENMS_OK)
        return enms_fail(err, errlen, ENMS_ETOOBIG, "redis key %s:%s too long", prefix, kind);
    return ENMS_OK;
}

void queue_pipe_init(struct queue_pipe *p, redisContext *ctx)
{
    p->ctx = ctx;
    p->n = 0;
    p->bad = -1;
    p->bad_rc = ENMS_OK;
    p->failed = 0;
}

/* Remembers the first append that could not be made; -1 for the caller. */
static int pipe_refuse(struct queue_pipe *p, int rc)
{
    if (p->bad < 0) {
        p->bad = p->n;
        p->bad_rc = rc;
    }
    return -1;
}

int queue_pipe_argv(struct queue_pipe *p, const char *what, int argc, const char **argv,
                    const size_t *argvlen)
{
    if (p->n == QUEUE_PIPE_MAX)
        return pipe_refuse(p, ENMS_ETOOBIG);
    if (redisAppendCommandArgv(p->ctx, argc, argv, argvlen) != REDIS_OK)
        return pipe_refuse(p, ENMS_ENOMEM);
    p->what[p->n] = what;
    return p->n++;
}

/* Appends a command of up to 8 string arguments (lengths by strlen). */
static int pipe_strings(struct queue_pipe *p, const char *what, int argc, const char **argv)
{
    size_t len[8];
    for (int i = 0; i < argc && i < 8; i++)
        len[i] = strlen(argv[i]);
    return queue_pipe_argv(p, what, argc, argv, len);
}

static void lease_value(char *buf, size_t buflen, const char *worker_id, int attempt)
{
    snprintf(buf, buflen, "%s|%d", worker_id, attempt);
}

int queue_pipe_lease_acquire(struct queue_pipe *p, const char *prefix, const char *job_id,
                             const char *worker_id, int attempt, int ttl_ms)
{
    char key[QUEUE_KEY_MAX], value[192], ttl[16];
    if (queue_key(key, sizeof key, prefix, "lease", job_id) != ENMS_OK)
        return pipe_refuse(p, ENMS_ETOOBIG);
    lease_value(value, sizeof value, worker_id, attempt);
    snprintf(ttl, sizeof ttl, "%d", ttl_ms);
    const char *argv[] = {"SET", key, value, "PX", ttl};
    return pipe_strings(p, "SET lease", 5, argv);
}

int queue_pipe_lease_release(struct queue_pipe *p, const char *prefix, const char *job_id,
                             const char *worker_id, int attempt)
{
    char key[QUEUE_KEY_MAX], value[192];
    if (queue_key(key, sizeof key, prefix, "lease", job_id) != ENMS_OK)
        return pipe_refuse(p, ENMS_ETOOBIG);
    lease_value(value, sizeof value, worker_id, attempt);
    const char *argv[] = {"EVAL", LEASE_RELEASE_LUA, "1", key, value};
    return pipe_strings(p, "EVAL lease release", 5, argv);
}

int queue_pipe_ack(struct queue_pipe *p, const char *prefix, const char *worker_id,
                   const char *job_id)
{
    char key[QUEUE_KEY_MAX];
    if (queue_key(key, sizeof key, prefix, "processing", worker_id) != ENMS_OK)
        return pipe_refuse(p, ENMS_ETOOBIG);
    const char *argv[] = {"LREM", key, "0", job_id};
    return pipe_strings(p, "LREM", 4, argv);
}

int queue_pipe_live_set(struct queue_pipe *p, const char *prefix, const char *job_id, int nfields,
                        const char *const *fields, const char *const *values, int ttl_s)
{
    enum { MAX_FIELDS = 16 };
    char key[QUEUE_KEY_MAX], ttl[16];
    const char *argv[2 + 2 * MAX_FIELDS];
    size_t argvlen[2 + 2 * MAX_FIELDS];
    if (queue_key(key, sizeof key, prefix, "job", job_id) != ENMS_OK)
        return pipe_refuse(p, ENMS_ETOOBIG);
    if (nfields < 1 || nfields > MAX_FIELDS)
        return pipe_refuse(p, ENMS_EINVAL);
    int argc = 0;
    argv[argc] = "HSET";
    argvlen[argc++] = 4;
    argv[argc] = key;
    argvlen[argc++] = strlen(key);
    for (int i = 0; i < nfields; i++) {
        argv[argc] = fields[i];
        argvlen[argc++] = strlen(fields[i]);
        argv[argc] = values[i] ? values[i] : "";
        argvlen[argc++] = values[i] ? strlen(values[i]) : 0;
    }
    int at = queue_pipe_argv(p, "HSET job", argc, argv, argvlen);
    snprintf(ttl, sizeof ttl, "%d", ttl_s);
    const char *ex[] = {"EXPIRE", key, ttl};
    if (pipe_strings(p, "EXPIRE job", 3, ex) < 0)
        return -1;
    return at;
}

int queue_pipe_publish(struct queue_pipe *p, const char *prefix, const char *json)
{
    char key[QUEUE_KEY_MAX];
    if (queue_key(key, sizeof key, prefix, "events", NULL) != ENMS_OK)
        return pipe_refuse(p, ENMS_ETOOBIG);
    const char *argv[] = {"PUBLISH", key, json};
    return pipe_strings(p, "PUBLISH", 3, argv);
}

int queue_pipe_run(struct queue_pipe *p, char *err, size_t errlen)
{
    int rc = ENMS_OK;
    for (int i = 0; i < p->n; i++) {
        redisReply *reply = NULL;
        if (redisGetReply(p->ctx, (void **)&reply) != REDIS_OK || !reply) {
            /* The context is dead: nothing more can be read from it, and
             * this command and the ones after may or may not have run. */
            rc = enms_fail(err, errlen, ENMS_EREDIS, "redis: %s: %s", p->what[i],
                           p->ctx->errstr[0] ? p->ctx->errstr : "no reply");
            for (int j = i; j < p->n; j++)
                p->failed |= 1ULL << j;
            break;
        }
        if (reply->type == REDIS_REPLY_ERROR) {
            if (rc == ENMS_OK)
                rc = enms_fail(err, errlen, ENMS_EREDIS, "redis: %s: %s", p->what[i], reply->str);
            p->failed |= 1ULL << i;
        }
        freeReplyObject(reply);
    }
    if (rc == ENMS_OK && p->bad >= 0)
        rc = enms_fail(err, errlen, p->bad_rc, "redis: command %d of the pipeline not sent (%s)",
                       p->bad, enms_err_name(p->bad_rc));
    p->n = 0;
    return rc;
}

int queue_pipe_failed(const struct queue_pipe *p, int index)
{
    if (index < 0 || index >= QUEUE_PIPE_MAX)
        return 1;
    return (p->failed >> index) & 1ULL ? 1 : 0;
}

int queue_is_uuid(const char *text, size_t len)
{
    if (!text || len != QUEUE_ID_LEN)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return 0;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return 0;
        }
    }
    return 1;
}

int queue_push(redisContext *ctx, const char *prefix, const char *queue_name, const char *job_id,
               char *err, size_t errlen)
{
    char key[QUEUE_KEY_MAX];
    int rc = key_or_fail(key, sizeof key, prefix, "queue", queue_name, err, errlen);
    if (rc != ENMS_OK)
        return rc;
    return command_ok(ctx, redisCommand(ctx, "LPUSH %s %s", key, job_id), "LPUSH", err, errlen);
}

int queue_claim(redisContext *ctx, const char *prefix, const char *queue_name,
                const char *worker_id, int timeout_s, char *job_id, char *err, size_t errlen)
{
    char src[QUEUE_KEY_MAX], dst[QUEUE_KEY_MAX];
    int rc;
    if ((rc = key_or_fail(src, sizeof src, prefix, "queue", queue_name, err, errlen)) != ENMS_OK ||
        (rc = key_or_fail(dst, sizeof dst, prefix, "processing", worker_id, err, errlen)) !=
            ENMS_OK)
        return rc;
    /* The server-side timeout stays below the client's read timeout, so a
     * NIL reply (not an I/O error) is how an idle wait ends. */
    redisReply *reply =
        redisCommand(ctx, "BLMOVE %s %s RIGHT LEFT %d", src, dst, timeout_s < 1 ? 1 : timeout_s);
    rc = reply_check(ctx, reply, "BLMOVE", err, errlen);
    if (rc != ENMS_OK)
        goto done;
    if (reply->type == REDIS_REPLY_NIL) {
        rc = ENMS_ENOTFOUND;
        goto done;
    }
    if (reply->type != REDIS_REPLY_STRING) {
        rc = enms_fail(err, errlen, ENMS_EREDIS, "redis: BLMOVE: unexpected reply type %d",
                       reply->type);
        goto done;
    }
    if (!queue_is_uuid(reply->str, reply->len)) {
        /* Something that is not a job id was pushed by hand: drop it from
         * our processing list so it cannot wedge the worker. */
        freeReplyObject(redisCommand(ctx, "LREM %s 1 %b", dst, reply->str, reply->len));
        rc = enms_fail(err, errlen, ENMS_EINVAL, "dropped a queue entry that is not a job id");
        goto done;
    }
    memcpy(job_id, reply->str, QUEUE_ID_LEN);
    job_id[QUEUE_ID_LEN] = '\0';
    rc = ENMS_OK;
done:
    if (reply)
        freeReplyObject(reply);
    return rc;
}

/* LMOVE up to ARGV[1] entries from KEYS[1] to KEYS[2]; the moved entries,
 * oldest first. */
static const char CLAIM_MORE_LUA[] =
    "local moved = {} "
    "for i = 1, tonumber(ARGV[1]) do "
    "local id = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') "
    "if not id then break end "
    "moved[i] = id "
    "end "
    "return moved";

int queue_claim_more(redisContext *ctx, const char *prefix, const char *queue_name,
                     const char *worker_id, int max, char (*ids)[QUEUE_ID_LEN + 1], int *n,
                     char *err, size_t errlen)
{
    char src[QUEUE_KEY_MAX], dst[QUEUE_KEY_MAX], count[16];
    redisReply *reply = NULL; /* freeReplyObject */
    int rc;
    *n = 0;
    if (max <= 0)
        return ENMS_OK;
    if ((rc = key_or_fail(src, sizeof src, prefix, "queue", queue_name, err, errlen)) != ENMS_OK ||
        (rc = key_or_fail(dst, sizeof dst, prefix, "processing", worker_id, err, errlen)) !=
            ENMS_OK)
        return rc;
    snprintf(count, sizeof count, "%d", max);
    reply = redisCommand(ctx, "EVAL %s 2 %s %s %s", CLAIM_MORE_LUA, src, dst, count);
    rc = reply_check(ctx, reply, "EVAL claim", err, errlen);
    if (rc != ENMS_OK)
        goto done;
    if (reply->type != REDIS_REPLY_ARRAY) {
        rc = enms_fail(err, errlen, ENMS_EREDIS, "redis: EVAL claim: unexpected reply type %d",
                       reply->type);
        goto done;
    }
    for (size_t i = 0; i < reply->elements && *n < max; i++) {
        const redisReply *e = reply->element[i];
        if (e->type != REDIS_REPLY_STRING)
            continue;
        if (!queue_is_uuid(e->str, e->len)) {
            /* As in queue_claim: not a job id, so it cannot wedge the worker. */
            freeReplyObject(redisCommand(ctx, "LREM %s 1 %b", dst, e->str, e->len));
            continue;
        }
        memcpy(ids[*n], e->str, QUEUE_ID_LEN);
        ids[*n][QUEUE_ID_LEN] = '\0';
        (*n)++;
    }
    rc = ENMS_OK;
done:
    if (reply)
        freeReplyObject(reply);
    return rc;
}

int queue_ack(redisContext *ctx, const char *prefix, const char *worker_id, const char *job_id,
              char *err, size_t errlen)
{
    struct queue_pipe p;
    queue_pipe_init(&p, ctx);
    queue_pipe_ack(&p, prefix, worker_id, job_id);
    return queue_pipe_run(&p, err, errlen);
}

int queue_length(redisContext *ctx, const char *key, long long *out, char *err, size_t errlen)
{
    redisReply *reply = redisCommand(ctx, "LLEN %s", key);
    int rc = reply_check(ctx, reply, "LLEN", err, errlen);
    if (rc == ENMS_OK)
        *out = reply->type == REDIS_REPLY_INTEGER ? reply->integer : 0;
    if (reply)
        freeReplyObject(reply);
    return rc;
}

int queue_contains(redisContext *ctx, const char *key, const char *job_id, char *err, size_t errlen)
{
    redisReply *reply = redisCommand(ctx, "LPOS %s %s", key, job_id);
    int rc = reply_check(ctx, reply, "LPOS", err, errlen);
    if (rc == ENMS_OK)
        rc = reply->type == REDIS_REPLY_INTEGER ? 1 : 0;
    if (reply)
        freeReplyObject(reply);
    return rc;
}

int lease_acquire(redisContext *ctx, const char *prefix, const char *job_id, const char *worker_id,
                  int attempt, int ttl_ms, char *err, size_t errlen)
{
    struct queue_pipe p;
    queue_pipe_init(&p, ctx);
    queue_pipe_lease_acquire(&p, prefix, job_id, worker_id, attempt, ttl_ms);
    return queue_pipe_run(&p, err, errlen);
}

/* Runs one of the lease scripts; returns its integer result or a negative
 * enms_err. */
static int lease_script(redisContext *ctx, const char *script, const char *prefix,
                        const char *job_id, const char *worker_id, int attempt, int ttl_ms,
                        char *err, size_t errlen)
{
    char key[QUEUE_KEY_MAX], value[192], ttl[16];
    int rc = key_or_fail(key, sizeof key, prefix, "lease", job_id, err, errlen);
    if (rc != ENMS_OK)
        return rc;
    lease_value(value, sizeof value, worker_id, attempt);
    snprintf(ttl, sizeof ttl, "%d", ttl_ms);
    redisReply *reply = redisCommand(ctx, "EVAL %s 1 %s %s %s", script, key, value, ttl);
    rc = reply_check(ctx, reply, "EVAL lease", err, errlen);
    if (rc == ENMS_OK)
        rc = reply->type == REDIS_REPLY_INTEGER && reply->integer > 0 ? 1 : 0;
    if (reply)
        freeReplyObject(reply);
    return rc;
}

int lease_renew(redisContext *ctx, const char *prefix, const char *job_id, const char *worker_id,
                int attempt, int ttl_ms, char *err, size_t errlen)
{
    int rc =
        lease_script(ctx, LEASE_RENEW_LUA, prefix, job_id, worker_id, attempt, ttl_ms, err, errlen);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return enms_fail(err, errlen, ENMS_ECONFLICT,
                         "lease of job %s attempt %d expired or taken over", job_id, attempt);
    return ENMS_OK;
}

int lease_release(redisContext *ctx, const char *prefix, const char *job_id, const char *worker_id,
                  int attempt, char *err, size_t errlen)
{
    int rc =
        lease_script(ctx, LEASE_RELEASE_LUA, prefix, job_id, worker_id, attempt, 0, err, errlen);
    return rc < 0 ? rc : ENMS_OK;
}

int lease_get(redisContext *ctx, const char *prefix, const char *job_id, char *holder,
              size_t holderlen, char *err, size_t errlen)
{
    char key[QUEUE_KEY_MAX];
    int rc = key_or_fail(key, sizeof key, prefix, "lease", job_id, err, errlen);
    if (rc != ENMS_OK)
        return rc;
    redisReply *reply = redisCommand(ctx, "GET %s", key);
    rc = reply_check(ctx, reply, "GET lease", err, errlen);
    if (rc == ENMS_OK) {
        if (reply->type == REDIS_REPLY_STRING)
            snprintf(holder, holderlen, "%.*s", (int)reply->len, reply->str);
        else
            rc = ENMS_ENOTFOUND;
    }
    if (reply)
        freeReplyObject(reply);
    return rc;
}

int job_live_set(redisContext *ctx, const char *prefix, const char *job_id, int nfields,
                 const char *const *fields, const char *const *values, int ttl_s, char *err,
                 size_t errlen)
{
    /* Both commands in one round trip. */
    struct queue_pipe p;
    queue_pipe_init(&p, ctx);
    queue_pipe_live_set(&p, prefix, job_id, nfields, fields, values, ttl_s);
    return queue_pipe_run(&p, err, errlen);
}

int cancel_flag_set(redisContext *ctx, const char *prefix, const char *job_id, char *err,
                    size_t errlen)
{
    char key[QUEUE_KEY_MAX];
    int rc = key_or_fail(key, sizeof key, prefix, "cancel", job_id, err, errlen);
    if (rc != ENMS_OK)
        return rc;
    return command_ok(ctx, redisCommand(ctx, "SET %s 1 EX 3600", key), "SET cancel", err, errlen);
}

int cancel_flag_get(redisContext *ctx, const char *prefix, const char *job_id, char *err,
                    size_t errlen)
{
    char key[QUEUE_KEY_MAX];
    int rc = key_or_fail(key, sizeof key, prefix, "cancel", job_id, err, errlen);
    if (rc != ENMS_OK)
        return rc;
    redisReply *reply = redisCommand(ctx, "EXISTS %s", key);
    rc = reply_check(ctx, reply, "EXISTS cancel", err, errlen);
    if (rc == ENMS_OK)
        rc = reply->type == REDIS_REPLY_INTEGER && reply->integer > 0 ? 1 : 0;
    if (reply)
        freeReplyObject(reply);
    return rc;
}

int events_publish(redisContext *ctx, const char *prefix, const char *json, char *err,
                   size_t errlen)
{
    struct queue_pipe p;
    queue_pipe_init(&p, ctx);
    queue_pipe_publish(&p, prefix, json);
    return queue_pipe_run(&p, err, errlen);
}

int dead_letter_push(redisContext *ctx, const char *prefix, const char *job_id, char *err,
                     size_t errlen)
{
    char key[QUEUE_KEY_MAX];
    int rc = key_or_fail(key, sizeof key, prefix, "dead", NULL, err, errlen);
    if (rc != ENMS_OK)
        return rc;
    return command_ok(ctx, redisCommand(ctx, "LPUSH %s %s", key, job_id), "LPUSH dead", err,
                      errlen);
}

int housekeeping_lock(redisContext *ctx, const char *prefix, const char *holder, int ttl_ms,
                      char *err, size_t errlen)
{
    char key[QUEUE_KEY_MAX], ttl[16];
    int rc = key_or_fail(key, sizeof key, prefix, "lock", "housekeeping", err, errlen);
    if (rc != ENMS_OK)
        return rc;
    snprintf(ttl, sizeof ttl, "%d", ttl_ms);
    redisReply *reply = redisCommand(ctx, "EVAL %s 1 %s %s %s", LOCK_LUA, key, holder, ttl);
    rc = reply_check(ctx, reply, "EVAL lock", err, errlen);
    if (rc == ENMS_OK && !(reply->type == REDIS_REPLY_INTEGER && reply->integer == 1))
        rc = ENMS_ECONFLICT;
    if (reply)
        freeReplyObject(reply);
    return rc;
}
