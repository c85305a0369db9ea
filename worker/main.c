/* main.c - enms-worker: registers in Redis, starts the housekeeping thread,
 * then claims jobs from the "default" queue one at a time and hands each to
 * runner.c until SIGTERM or SIGINT.
 *
 * Signals are blocked in every thread and taken by one thread with
 * sigwait(), so no work at all happens in a signal handler. The first
 * signal stops claiming and gives a running job cfg->shutdown_grace_s to
 * finish (runner.c and heartbeat.c hand it back after that); a second one
 * ends the process at once, and the job's lease then expires for
 * housekeeping to recover. Connection losses are survived: the loop
 * reconnects with capped exponential backoff and re-registers. */
#include "housekeeping.h"
#include "registry.h"
#include "runner.h"
#include "../common/config.h"
#include "../common/error.h"
#include "../common/log.h"
#include "../common/pg.h"
#include "../common/queue.h"
#include "../common/redis.h"

#include <errno.h>
#include <gsl/gsl_errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define CLAIM_WAIT_S 1 /* BLMOVE timeout: how often an idle worker checks its stop flag */
/* Reconnect attempts are one connect and a PING each; a low cap means a
 * store that comes back is used again within seconds (30 s left an idle
 * worker asleep for up to 30 s after a 30 s Redis outage). */
#define BACKOFF_MAX_S      5
#define RECONNECT_SLICE_MS 100

struct signal_thread_args {
    sigset_t set;
    struct worker *w;
};

static void print_usage(void)
{
    printf("usage: enms-worker [--help]\n\nConfiguration comes from the environment:\n");
    for (size_t i = 0; i < config_var_count; i++)
        printf("  %-26s %-14s %s\n", config_vars[i].name, config_vars[i].default_text,
               config_vars[i].meaning);
}

/* Takes SIGINT/SIGTERM for the whole process. Ordinary thread context, so
 * logging is allowed; _exit on the second signal skips every clean-up on
 * purpose (the operator asked for "now"). */
static void *signal_thread(void *argp)
{
    struct signal_thread_args *args = argp;
    for (;;) {
        int signo = 0;
        if (sigwait(&args->set, &signo) != 0)
            continue;
        const char *name = signo == SIGINT ? "SIGINT" : "SIGTERM";
        if (!atomic_load(&args->w->shutdown)) {
            atomic_store(&args->w->shutdown_at_ms, runner_now_ms());
            atomic_store(&args->w->shutdown, 1);
            log_info("received %s: no more claims; a running job gets %d s to finish", name,
                     args->w->cfg->shutdown_grace_s);
        } else {
            log_warn("received a second %s: exiting now", name);
            _exit(1);
        }
    }
    return NULL;
}

/* Sleeps up to ms, returning early once shutdown is requested. */
static void sleep_unless_stopping(struct worker *w, long ms)
{
    for (long slept = 0; slept < ms && !atomic_load(&w->shutdown); slept += RECONNECT_SLICE_MS) {
        struct timespec ts = {0, RECONNECT_SLICE_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Connects what is missing and, when due, renews the idle registration and
 * checks PostgreSQL. Returns 0 or a negative enms_err with err filled. */
static int keep_registered(struct worker *w, long long *next_announce_ms, char *err, size_t errlen)
{
    int rc;
    long long now = runner_now_ms();
    if ((rc = runner_pg(w, err, errlen)) != ENMS_OK ||
        (rc = runner_redis(w, err, errlen)) != ENMS_OK)
        return rc;
    if (now < *next_announce_ms)
        return ENMS_OK;
    if ((rc = pg_ping(w->pg, err, errlen)) != ENMS_OK ||
        (rc = registry_announce(w->redis, &w->me, "idle", NULL, err, errlen)) != ENMS_OK)
        return rc;
    *next_announce_ms = now + w->cfg->heartbeat_interval_s * 1000LL;
    return ENMS_OK;
}

/* Claims and runs jobs until shutdown (or until a stuck training thread
 * requires a fresh process image). */
static void claim_loop(struct worker *w)
{
    const struct enms_config *cfg = w->cfg;
    char err[512], job_id[QUEUE_ID_LEN + 1];
    char batch[RUNNER_BATCH_MAX][QUEUE_ID_LEN + 1];
    long long next_announce_ms = 0;
    int backoff_s = 1, registered = 0;

    while (!atomic_load(&w->shutdown) && !w->must_reexec) {
        int rc = keep_registered(w, &next_announce_ms, err, sizeof err);
        if (rc == ENMS_OK && !registered) {
            log_info("registered as %s, idle", cfg->worker_id);
            registered = 1;
        }
        if (rc == ENMS_OK && w->dirty) {
            rc = runner_recover(w, err, sizeof err);
            if (rc == ENMS_OK)
                w->dirty = 0;
        }
        if (rc == ENMS_OK) {
            /* BLMOVE waits CLAIM_WAIT_S on the server: the client's read
             * timeout must outlast it, whatever ENMS_IO_TIMEOUT_MS says.
             * (tv_usec must stay below one second, or setsockopt refuses
             * the value and every claim fails.) */
            if (cfg->io_timeout_ms < CLAIM_WAIT_S * 1000 + 1000) {
                struct timeval tv = {CLAIM_WAIT_S + 1, 0};
                redisSetTimeout(w->redis, tv);
            }
            rc = queue_claim(w->redis, cfg->redis_prefix, QUEUE_DEFAULT, cfg->worker_id,
                             CLAIM_WAIT_S, job_id, err, sizeof err);
            if (rc == ENMS_ENOTFOUND)
                rc = ENMS_OK; /* idle: the loop checks the stop flag */
            else if (rc == ENMS_EINVAL)
                log_warn("%s", err), rc = ENMS_OK;
            else if (rc == ENMS_OK && atomic_load(&w->shutdown)) {
                /* Claimed in the very second the stop came: give it back. */
                if (queue_push(w->redis, cfg->redis_prefix, QUEUE_DEFAULT, job_id, err,
                               sizeof err) != ENMS_OK ||
                    queue_ack(w->redis, cfg->redis_prefix, cfg->worker_id, job_id, err,
                              sizeof err) != ENMS_OK)
                    log_event(LOG_WARN, job_id, "cannot hand back at shutdown: %s", err);
                break;
            } else if (rc == ENMS_OK) {
                /* The runner puts the registry back to idle with the job's
                 * end; the idle announce and the PostgreSQL check wait for
                 * their interval (or follow an error, below). A worker
                 * whose jobs are short takes more of the queue at once. */
                int want = runner_batch_size(w), more = 0;
                memcpy(batch[0], job_id, sizeof batch[0]);
                if (want > 1 &&
                    queue_claim_more(w->redis, cfg->redis_prefix, QUEUE_DEFAULT, cfg->worker_id,
                                     want - 1, batch + 1, &more, err, sizeof err) != ENMS_OK) {
                    /* The script may have moved ids we did not hear of:
                     * runner_recover puts them back. */
                    log_warn("%s", err);
                    w->dirty = 1;
                    more = 0;
                }
                rc = more == 0 ? runner_run(w, job_id) : runner_run_batch(w, batch, 1 + more);
                if (rc != ENMS_OK)
                    snprintf(err, sizeof err, "job %s: %s", job_id, enms_err_name(rc));
            }
        }
        if (rc == ENMS_OK) {
            backoff_s = 1;
            continue;
        }
        log_warn("%s (retrying in %d s)", err, backoff_s);
        registered = 0;
        next_announce_ms = 0;
        sleep_unless_stopping(w, backoff_s * 1000L);
        backoff_s = backoff_s * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S : backoff_s * 2;
    }
}

int main(int argc, char **argv)
{
    struct enms_config cfg;
    struct redis_url redis_url;
    struct worker w;
    struct signal_thread_args sig_args;
    struct housekeeping_thread_args hk_args;
    atomic_int hk_stop = 0;
    pthread_t sig_thread, hk_thread;
    int hk_started = 0;
    char err[512];

    if (argc > 1) {
        print_usage();
        return strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    log_init("worker", LOG_INFO); /* so a configuration error is a JSON line too */
    if (config_load(&cfg, err, sizeof err) != ENMS_OK) {
        log_error("configuration error: %s", err);
        return 2;
    }
    log_init("worker", cfg.log_level);
    /* GSL aborts the process on errors by default; models check return codes. */
    gsl_set_error_handler_off();
    if (redis_url_parse(cfg.redis_url, &redis_url, err, sizeof err) != ENMS_OK) {
        log_error("ENMS_REDIS_URL: %s", err);
        return 2;
    }
    memset(&w, 0, sizeof w);
    w.cfg = &cfg;
    w.redis_url = &redis_url;
    w.me.id = cfg.worker_id;
    w.me.prefix = cfg.redis_prefix;
    w.me.pid = (long)getpid();
    w.me.started = time(NULL);
    w.me.ttl_s = cfg.heartbeat_ttl_s;
    w.dirty = 1; /* a predecessor under the same id may have left ids behind */
    w.seed = (unsigned int)getpid() ^ (unsigned int)time(NULL);
    atomic_init(&w.shutdown, 0);
    atomic_init(&w.shutdown_at_ms, 0);
    snprintf(w.me.host, sizeof w.me.host, "%s", cfg.worker_host);

    /* Blocked before any thread starts, so every thread inherits the mask
     * and only sigwait() ever sees these signals. */
    sigemptyset(&sig_args.set);
    sigaddset(&sig_args.set, SIGINT);
    sigaddset(&sig_args.set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sig_args.set, NULL);
    signal(SIGPIPE, SIG_IGN);
    sig_args.w = &w;
    if (pthread_create(&sig_thread, NULL, signal_thread, &sig_args) != 0) {
        log_error("cannot start the signal thread");
        return 1;
    }
    pthread_detach(sig_thread);

    hk_args = (struct housekeeping_thread_args){
        .cfg = &cfg, .redis_url = &redis_url, .holder_id = cfg.worker_id, .stop = &hk_stop};
    if (pthread_create(&hk_thread, NULL, housekeeping_thread, &hk_args) == 0)
        hk_started = 1;
    else
        log_error("cannot start the housekeeping thread; other workers will do it");

    log_info("worker %s starting (heartbeat every %d s, ttl %d s)", cfg.worker_id,
             cfg.heartbeat_interval_s, cfg.heartbeat_ttl_s);
    claim_loop(&w);

    if (hk_started) {
        atomic_store(&hk_stop, 1);
        pthread_join(hk_thread, NULL);
    }
    if (w.must_reexec && !atomic_load(&w.shutdown)) {
        /* A training thread is stuck and cannot be stopped safely; a fresh
         * image of this same process (same pid, so the same default worker
         * id) ends it and goes on serving. The job is already settled. */
        log_warn("restarting the worker process to get rid of a stuck training thread");
        if (w.redis)
            redisFree(w.redis);
        if (w.pg)
            PQfinish(w.pg);
        execv("/proc/self/exe", argv);
        log_error("cannot restart (%s); exiting", strerror(errno));
        _exit(1);
    }
    log_info("stopping");
    if (w.redis && w.redis->err == 0 && registry_withdraw(w.redis, &w.me, err, sizeof err) != 0)
        log_warn("could not withdraw from the registry: %s", err);
    if (w.redis)
        redisFree(w.redis);
    if (w.pg)
        PQfinish(w.pg);
    if (w.train_pg)
        PQfinish(w.train_pg);
    log_info("stopped");
    return 0;
}
