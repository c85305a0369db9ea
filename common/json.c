/* json.c - typed field reads and printing over cJSON (see json.h). */
#include "json.h"
#include "error.h"

#include <math.h>
#include <string.h>

int json_depth_within(const char *buf, size_t len, int max_depth)
{
    int depth = 0, in_string = 0;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (in_string) {
            if (c == '\\')
                i++; /* the escaped character cannot end the string */
            else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth)
                return 0;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return 1;
}

cJSON *json_parse(const char *buf, size_t len, char *err, size_t errlen)
{
    const char *end = NULL;
    if (!json_depth_within(buf, len, JSON_MAX_DEPTH)) {
        enms_fail(err, errlen, ENMS_EINVAL, "nested deeper than %d levels", JSON_MAX_DEPTH);
        return NULL;
    }
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!root) {
        size_t at = end && end >= buf ? (size_t)(end - buf) : 0;
        enms_fail(err, errlen, ENMS_EINVAL, "invalid JSON at byte %zu", at);
        return NULL;
    }
    /* Trailing garbage after a complete value is an error too, not ignored. */
    while (end && (size_t)(end - buf) < len &&
           (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
        end++;
    if (end && (size_t)(end - buf) < len && *end != '\0') {
        enms_fail(err, errlen, ENMS_EINVAL, "invalid JSON at byte %zu: trailing data",
                  (size_t)(end - buf));
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

int json_get_string(const cJSON *obj, const char *name, size_t max_len, const char **out, char *err,
                    size_t errlen)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!item || cJSON_IsNull(item))
        return ENMS_ENOTFOUND;
    if (!cJSON_IsString(item) || !item->valuestring)
        return enms_fail(err, errlen, ENMS_EINVAL, "%s: must be a string", name);
    if (strlen(item->valuestring) > max_len)
        return enms_fail(err, errlen, ENMS_EINVAL, "%s: longer than %zu characters", name, max_len);
    *out = item->valuestring;
    return ENMS_OK;
}

int json_get_number(const cJSON *obj, const char *name, double *out, char *err, size_t errlen)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!item || cJSON_IsNull(item))
        return ENMS_ENOTFOUND;
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble))
        return enms_fail(err, errlen, ENMS_EINVAL, "%s: must be a number", name);
    *out = item->valuedouble;
    return ENMS_OK;
}

char *json_print(const cJSON *item)
{
    return cJSON_PrintUnformatted(item);
}

char *json_error_body(const char *detail)
{
    cJSON *obj = cJSON_CreateObject();
    char *text = NULL;
    if (!obj)
        return NULL;
    if (cJSON_AddStringToObject(obj, "detail", detail ? detail : "error"))
        text = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    return text;
}
