/* redis.h - Redis connection helpers on hiredis.
 *
 * hiredis has no URL parser and no reconnect policy; this module supplies
 * both. A redisContext is not thread-safe: one per thread or process. */
#ifndef ENMS_REDIS_H
#define ENMS_REDIS_H

#include <stddef.h>
#include <hiredis.h>

struct redis_url {
    char host[256];
    int port;           /* default 6379 */
    int db;             /* default 0 */
    char username[128]; /* empty: none (Redis 6 ACL user) */
    char password[256]; /* empty: no AUTH */
};

/* Parses redis://[[user]:password@]host[:port][/db]. Pure function over the
 * string (fuzzed). Returns 0 or ENMS_EINVAL with the reason in err. */
int redis_url_parse(const char *url, struct redis_url *out, char *err, size_t errlen);

/* Connects with a connect timeout, sets read/write timeouts, AUTHs and
 * SELECTs. Returns a context the caller frees with redisFree(), or NULL with
 * the reason in err. */
redisContext *redis_connect(const struct redis_url *url, int connect_timeout_ms, int io_timeout_ms,
                            char *err, size_t errlen);

/* Makes *ctx usable: connects when NULL, reconnects when it has an I/O error
 * (hiredis contexts are dead after one) or the server closed it meanwhile
 * (checked without a round trip). Not for a subscribed context, whose
 * socket legitimately holds unread messages. Returns 0 or ENMS_EREDIS. */
int redis_ensure(redisContext **ctx, const struct redis_url *url, int connect_timeout_ms,
                 int io_timeout_ms, char *err, size_t errlen);

/* Sends PING; 0 when the answer is PONG, ENMS_EREDIS otherwise. */
int redis_ping(redisContext *ctx, char *err, size_t errlen);

/* Writes "<prefix>:<suffix>" into buf; returns 0 or ENMS_ETOOBIG. */
int redis_key(char *buf, size_t buflen, const char *prefix, const char *suffix);

#endif
