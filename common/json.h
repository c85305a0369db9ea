/* json.h - small helpers over cJSON used by the API, worker and enmsctl.
 *
 * cJSON does the parsing and printing; these helpers add typed field reads
 * with validation messages that name the field, so every caller reports bad
 * input the same way. */
#ifndef ENMS_JSON_H
#define ENMS_JSON_H

#include <stddef.h>
#include <cJSON.h>

/* Deepest nesting of arrays and objects accepted in input. cJSON's own
 * limit is 1000 levels, deep enough to spend a thread's stack and CPU on
 * a hostile body; our documents are a few levels deep. */
#define JSON_MAX_DEPTH 32

/* True when the arrays and objects in buf[0..len) nest at most max_depth
 * levels deep. A scan of the raw text (brackets outside strings), so it
 * runs before any parsing; it does not check that the text is JSON. */
int json_depth_within(const char *buf, size_t len, int max_depth);

/* Parses exactly len bytes (need not be NUL-terminated). Returns a tree the
 * caller frees with cJSON_Delete(), or NULL with "invalid JSON at byte N"
 * or "nested deeper than JSON_MAX_DEPTH levels". */
cJSON *json_parse(const char *buf, size_t len, char *err, size_t errlen);

/* Reads a string member. Returns 0 and points *out into the tree (valid while
 * the tree lives), ENMS_ENOTFOUND when absent or null, ENMS_EINVAL when not a
 * string or longer than max_len bytes. */
int json_get_string(const cJSON *obj, const char *name, size_t max_len, const char **out, char *err,
                    size_t errlen);

/* Reads a number member into *out. Same returns as json_get_string; also
 * rejects non-finite values. */
int json_get_number(const cJSON *obj, const char *name, double *out, char *err, size_t errlen);

/* Prints unformatted JSON. Returns a string the caller frees with
 * cJSON_free(), or NULL when out of memory. */
char *json_print(const cJSON *item);

/* Builds {"detail": detail} printed; caller frees with cJSON_free(). */
char *json_error_body(const char *detail);

#endif
