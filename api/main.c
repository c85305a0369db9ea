/* main.c - enms-api: reads configuration, refuses unsafe binds, starts
 * civetweb with the API routes, the access checks and the dashboard, and
 * stops cleanly on SIGINT or SIGTERM. Request handling lives in the
 * routes_*.c files, the token check and access log in access.c. */
#include "access.h"
#include "routes.h"
#include "server.h"
#include "../common/error.h"
#include "../common/log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static void *on_thread_start(const struct mg_context *ctx, int thread_type)
{
    (void)ctx;
    /* Only request threads (type 1) talk to PostgreSQL and Redis. */
    return thread_type == 1 ? api_thread_create() : NULL;
}

static void on_thread_exit(const struct mg_context *ctx, int thread_type, void *thread_pointer)
{
    (void)ctx;
    (void)thread_type;
    api_thread_free(thread_pointer);
}

/* civetweb's own messages go through our logger, so they are JSON lines
 * like every other; they name sockets and files, never request headers. */
static int on_civetweb_log(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    log_warn("civetweb: %s", message);
    return 1;
}

/* Headers civetweb adds to what it serves itself: the dashboard's files and
 * its own error pages. The dashboard loads only its own scripts, styles and
 * data (ES modules and Chart.js from web/vendor, no inline code), so "self"
 * is all it needs; it is never to be framed. API replies are written by
 * http.c and carry nosniff on their own. */
static const char SECURITY_HEADERS[] = "Content-Security-Policy: default-src 'self'; "
                                       "frame-ancestors 'none'\r\n"
                                       "X-Content-Type-Options: nosniff\r\n"
                                       "X-Frame-Options: DENY\r\n"
                                       "Referrer-Policy: no-referrer";

static int is_loopback(const char *addr)
{
    return strncmp(addr, "127.", 4) == 0;
}

/* What the stop waker connects to, and when to give up. */
struct waker {
    struct sockaddr_in addr;
    atomic_int done;
};

/* civetweb's listener polls its sockets in 2 s quanta and looks at its stop
 * flag only between them, so mg_stop() waits up to 2 s. A connection to our
 * own port ends the poll at once; this thread makes one every 20 ms until
 * mg_stop() has returned (at most 3 s). */
static void *wake_listener(void *arg)
{
    struct waker *wk = arg;
    for (int i = 0; i < 150 && !atomic_load(&wk->done); i++) {
        usleep(20000);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            continue;
        (void)connect(fd, (const struct sockaddr *)&wk->addr, sizeof wk->addr);
        close(fd);
    }
    return NULL;
}

static void print_usage(void)
{
    printf("usage: enms-api [--help | --routes]\n\n--routes prints every endpoint.\n\n"
           "Configuration comes from the environment:\n");
    for (size_t i = 0; i < config_var_count; i++)
        printf("  %-26s %-14s %s\n", config_vars[i].name, config_vars[i].default_text,
               config_vars[i].meaning);
}

int main(int argc, char **argv)
{
    struct enms_config cfg;
    struct api_server server;
    char err[512];
    char listen[96], threads[16], timeout_ms[16];
    struct mg_context *ctx = NULL;
    struct mg_callbacks callbacks;
    sigset_t stop_signals;
    int signo = 0;
    int rc = 1;

    if (argc == 2 && strcmp(argv[1], "--routes") == 0) {
        routes_print(stdout);
        return 0;
    }
    if (argc > 1) {
        print_usage();
        return strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    log_init("api", LOG_INFO);
    if (config_load(&cfg, err, sizeof err) != ENMS_OK) {
        log_error("configuration error: %s", err);
        return 2;
    }
    log_init("api", cfg.log_level);
    if (!is_loopback(cfg.http_addr) && cfg.api_token[0] == '\0' && !cfg.allow_insecure) {
        log_error("refusing to listen on %s without ENMS_API_TOKEN: set a token, bind "
                  "127.0.0.1, or set ENMS_ALLOW_INSECURE=1 if a proxy guards the port",
                  cfg.http_addr);
        return 2;
    }
    memset(&server, 0, sizeof server);
    server.cfg = &cfg;
    if (redis_url_parse(cfg.redis_url, &server.redis, err, sizeof err) != ENMS_OK) {
        log_error("ENMS_REDIS_URL: %s", err);
        return 2;
    }

    /* Block the stop signals before civetweb starts its threads, so they
     * inherit the mask and only sigwait() below receives them. */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    snprintf(listen, sizeof listen, "%s:%d", cfg.http_addr, cfg.http_port);
    snprintf(threads, sizeof threads, "%d", cfg.http_threads);
    snprintf(timeout_ms, sizeof timeout_ms, "%d", cfg.http_timeout_ms);
    struct stat st;
    int have_web = cfg.web_root[0] && stat(cfg.web_root, &st) == 0 && S_ISDIR(st.st_mode);
    const char *options[] = {
        "listening_ports", listen, "num_threads", threads, "request_timeout_ms", timeout_ms,
        "enable_keep_alive", "yes", "keep_alive_timeout_ms", "5000",
        /* Headers and body leave in separate writes; with
         * Nagle's algorithm the body then waits for the
         * client's delayed ACK, 40 ms per keep-alive request. */
        "tcp_nodelay", "1", "enable_directory_listing", "no", "additional_header", SECURITY_HEADERS,
        "document_root", /* last: leaving it out ends the list */
        have_web ? cfg.web_root : NULL, NULL};
    if (!have_web) {
        log_warn("dashboard folder \"%s\" not found: serving the API only (set ENMS_WEB_ROOT)",
                 cfg.web_root);
        options[sizeof options / sizeof options[0] - 3] = NULL;
    }
    memset(&callbacks, 0, sizeof callbacks);
    callbacks.init_thread = on_thread_start;
    callbacks.exit_thread = on_thread_exit;
    callbacks.log_message = on_civetweb_log;
    callbacks.begin_request = access_begin_request;
    callbacks.end_request = access_end_request;

    /* Before mg_start: the first request may arrive as soon as it returns. */
    server.http_stats = http_stats_create();
    if (!server.http_stats) {
        log_error("out of memory");
        return 1;
    }
    mg_init_library(0);
    ctx = mg_start(&callbacks, &server, options);
    if (!ctx) {
        log_error("cannot listen on %s (port in use or address not local)", listen);
        goto done;
    }
    routes_register(ctx, &server);
    log_info("listening on http://%s/ (dashboard %s)", listen, have_web ? cfg.web_root : "off");

    if (sigwait(&stop_signals, &signo) == 0)
        log_info("received %s, stopping", signo == SIGINT ? "SIGINT" : "SIGTERM");
    rc = 0;
done:
    /* Open event streams poll this flag; without it mg_stop would wait for
     * their clients to leave. */
    atomic_store(&server.stopping, 1);
    if (ctx) {
        struct waker wk;
        pthread_t waker_thread;
        memset(&wk, 0, sizeof wk);
        wk.addr.sin_family = AF_INET;
        wk.addr.sin_port = htons((uint16_t)cfg.http_port);
        if (inet_pton(AF_INET, cfg.http_addr, &wk.addr.sin_addr) != 1 ||
            wk.addr.sin_addr.s_addr == htonl(INADDR_ANY))
            wk.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int waking = pthread_create(&waker_thread, NULL, wake_listener, &wk) == 0;
        mg_stop(ctx);
        atomic_store(&wk.done, 1);
        if (waking)
            pthread_join(waker_thread, NULL);
    }
    mg_exit_library();
    http_stats_free(server.http_stats); /* no thread records after mg_stop */
    if (rc == 0)
        log_info("stopped");
    return rc;
}
