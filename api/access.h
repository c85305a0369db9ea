/* access.h - the API's front door, run by civetweb around every request:
 * the bearer-token check, the request id, request accounting for /metrics
 * and the access log. It does not route, and answers nothing but 400 (a
 * NUL in the path) and 401 (no or a wrong token). */
#ifndef ENMS_API_ACCESS_H
#define ENMS_API_ACCESS_H

#include <stddef.h>
#include <civetweb.h>

/* civetweb's begin_request callback (the context's user data is the
 * struct api_server). Starts the request's clock, takes or makes its
 * request id, and answers 401 when a token is configured and a protected
 * path (/api..., /metrics) comes without "Authorization: Bearer <token>".
 * Answers 400 when the raw path holds "%00" (access_path_has_nul).
 * Returns the status when it answered, 0 to let civetweb route the request. */
int access_begin_request(struct mg_connection *conn);

/* True when the request line's path held "%00". civetweb 1.15 decodes
 * the path in place before begin_request (request_uri and local_uri_raw
 * included), so the escape itself is gone: [path, end) is the span the
 * undecoded path took in civetweb's buffer. There the decoded text ends
 * with one NUL, followed by the undecoded tail that decoding freed (only
 * when some escape shrank the text), so a second NUL can only be a decoded
 * %00. A NULL or implausible span is false. */
int access_path_has_nul(const char *path, const char *end);

/* civetweb's end_request callback: counts the request in the server's
 * http_stats, writes its access-log line and clears the request id. */
void access_end_request(const struct mg_connection *conn, int status);

/* True when path needs the token: /api and /metrics in any letter case and
 * after any number of leading slashes, because civetweb matches handler
 * patterns without regard to case. */
int access_path_protected(const char *path);

/* Compares a presented token with the configured one in time that depends
 * on neither's content nor on the configured length: both are copied into
 * fixed-size zero-padded buffers and every byte is compared. Tokens longer
 * than the buffer never match. */
int access_token_equal(const char *expected, const char *given, size_t given_len);

#endif
