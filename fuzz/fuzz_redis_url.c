/* fuzz_redis_url.c - libFuzzer target for the Redis URL parser
 * (common/redis.c, redis_url_parse), which reads ENMS_REDIS_URL.
 *
 * The input is the URL (cut at its first NUL, as an environment variable
 * would be). Whatever it holds, the parser must refuse it with ENMS_EINVAL
 * and a message, or fill a struct whose fields obey the documented bounds
 * and which, written back as a URL, parses to the same struct. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/error.h"
#include "../common/redis.h"

static int host_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
}

static void check_parsed(const struct redis_url *u)
{
    if (!memchr(u->host, '\0', sizeof u->host) || !memchr(u->username, '\0', sizeof u->username) ||
        !memchr(u->password, '\0', sizeof u->password))
        abort();
    if (u->host[0] == '\0' || u->port < 1 || u->port > 65535 || u->db < 0 || u->db > 10000)
        abort();
    for (const char *c = u->host; *c; c++)
        if (!host_char_ok(*c))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    struct redis_url u, again;
    char *url = malloc(size + 1);
    if (!url)
        abort();
    memcpy(url, data, size);
    url[size] = '\0';

    err[0] = '\0';
    int rc = redis_url_parse(url, &u, err, sizeof err);
    if (rc != ENMS_OK) {
        if (rc != ENMS_EINVAL || err[0] == '\0')
            abort();
        goto done;
    }
    check_parsed(&u);
    /* Written back in canonical form, the URL must mean the same. */
    char back[sizeof u.host + sizeof u.username + sizeof u.password + 64];
    if (u.username[0] || u.password[0])
        snprintf(back, sizeof back, "redis://%s:%s@%s:%d/%d", u.username, u.password, u.host,
                 u.port, u.db);
    else
        snprintf(back, sizeof back, "redis://%s:%d/%d", u.host, u.port, u.db);
    if (redis_url_parse(back, &again, err, sizeof err) != ENMS_OK ||
        strcmp(again.host, u.host) != 0 || strcmp(again.username, u.username) != 0 ||
        strcmp(again.password, u.password) != 0 || again.port != u.port || again.db != u.db)
        abort();
done:
    free(url);
    return 0;
}
