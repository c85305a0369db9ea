/* main.c - enms-worker: connects to PostgreSQL and Redis, registers itself,
 * and keeps its heartbeat alive until SIGINT or SIGTERM, when it withdraws.
 *
 * Job claiming and training arrive with the pipeline issue; until then the
 * worker idles, which is enough for operators to see it in Redis and for
 * `make run` to show a complete stack. Connection losses are survived: the
 * loop reconnects with capped exponential backoff and re-registers. */
#include "registry.h"
#include "../common/config.h"
#include "../common/error.h"
#include "../common/log.h"
#include "../common/pg.h"
#include "../common/redis.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void print_usage(void)
{
    printf("usage: enms-worker [--help]\n\nConfiguration comes from the environment:\n");
    for (size_t i = 0; i < config_var_count; i++)
        printf("  %-26s %-14s %s\n", config_vars[i].name, config_vars[i].default_text,
               config_vars[i].meaning);
}

/* Waits up to seconds for a stop signal; returns the signal or 0. */
static int wait_for_stop(const sigset_t *stop_signals, int seconds)
{
    struct timespec timeout = {seconds, 0};
    int signo = sigtimedwait(stop_signals, NULL, &timeout);
    return signo > 0 ? signo : 0;
}

int main(int argc, char **argv)
{
    struct enms_config cfg;
    struct redis_url redis_url;
    struct worker_identity me;
    redisContext *redis = NULL;
    PGconn *pg = NULL;
    sigset_t stop_signals;
    char err[512];
    int backoff_s = 1;
    int registered = 0;
    int signo = 0;

    if (argc > 1) {
        print_usage();
        return strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    if (config_load(&cfg, err, sizeof err) != ENMS_OK) {
        fprintf(stderr, "enms-worker: configuration error: %s\n", err);
        return 2;
    }
    log_init("worker", cfg.log_level);
    if (redis_url_parse(cfg.redis_url, &redis_url, err, sizeof err) != ENMS_OK) {
        log_error("ENMS_REDIS_URL: %s", err);
        return 2;
    }
    memset(&me, 0, sizeof me);
    me.id = cfg.worker_id;
    me.prefix = cfg.redis_prefix;
    me.pid = (long)getpid();
    me.started = time(NULL);
    me.ttl_s = cfg.heartbeat_ttl_s;
    if (gethostname(me.host, sizeof me.host - 1) != 0)
        snprintf(me.host, sizeof me.host, "unknown");

    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);
    log_info("worker %s starting (heartbeat every %d s, ttl %d s)", me.id, cfg.heartbeat_interval_s,
             cfg.heartbeat_ttl_s);

    while (signo == 0) {
        int wait_s = cfg.heartbeat_interval_s;
        if (pg_ensure(&pg, cfg.pg_dsn, cfg.connect_timeout_ms, "enms-worker", err, sizeof err) !=
                ENMS_OK ||
            pg_ping(pg, err, sizeof err) != ENMS_OK) {
            log_warn("%s (retrying in %d s)", err, backoff_s);
            registered = 0;
            wait_s = backoff_s;
        } else if (redis_ensure(&redis, &redis_url, cfg.connect_timeout_ms, cfg.io_timeout_ms, err,
                                sizeof err) != ENMS_OK ||
                   registry_announce(redis, &me, "idle", err, sizeof err) != ENMS_OK) {
            log_warn("%s (retrying in %d s)", err, backoff_s);
            registered = 0;
            wait_s = backoff_s;
        } else {
            if (!registered)
                log_info("registered as %s, idle", me.id);
            registered = 1;
            backoff_s = 1;
        }
        if (!registered)
            backoff_s = backoff_s * 2 > 30 ? 30 : backoff_s * 2;
        signo = wait_for_stop(&stop_signals, wait_s);
    }
    log_info("received %s, stopping", signo == SIGINT ? "SIGINT" : "SIGTERM");
    if (redis && redis->err == 0 && registry_withdraw(redis, &me, err, sizeof err) != ENMS_OK)
        log_warn("could not withdraw from the registry: %s", err);
    if (redis)
        redisFree(redis);
    if (pg)
        PQfinish(pg);
    log_info("stopped");
    return 0;
}
