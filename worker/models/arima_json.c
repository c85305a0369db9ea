/* arima_json.c - the ARIMA artifact: a fitted model to and from a JSON
 * object (cJSON). The loader treats its input as hostile: every field is
 * type-checked, bounded and required to be finite, and the orders must agree
 * with the number of coefficients and the size of the stored state, so a
 * loaded model can be forecast from without further checks. Fitting and
 * forecasting are arima.c's. */
#include "arima.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "../../common/error.h"

#define ARTIFACT_VERSION 1
/* Largest artifact text accepted: a 512-state covariance is ~6 MB of JSON. */
#define MAX_TEXT (16u << 20)

static const char *method_name(enum arima_method m)
{
    switch (m) {
    case ARIMA_ML:
        return "ML";
    case ARIMA_CSS:
        return "CSS";
    default:
        return "CSS-ML";
    }
}

/* Adds a number, or null for NAN/inf (JSON has no NaN). */
static int add_num(cJSON *obj, const char *name, double v)
{
    cJSON *item = isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
    return item && cJSON_AddItemToObject(obj, name, item) ? 0 : -1;
}

static int add_array(cJSON *obj, const char *name, const double *v, size_t n)
{
    cJSON *arr = cJSON_AddArrayToObject(obj, name);
    if (!arr)
        return -1;
    for (size_t i = 0; i < n; i++) {
        cJSON *item = isfinite(v[i]) ? cJSON_CreateNumber(v[i]) : cJSON_CreateNull();
        if (!item || !cJSON_AddItemToArray(arr, item))
            return -1;
    }
    return 0;
}

static int add_ints(cJSON *obj, const char *name, int a, int b, int c)
{
    int v[3] = {a, b, c};
    cJSON *arr = cJSON_CreateIntArray(v, 3);
    return arr && cJSON_AddItemToObject(obj, name, arr) ? 0 : -1;
}

cJSON *arima_to_json(const struct arima_model *m, char *err, size_t errlen)
{
    if (!m || !m->coef || !m->a || !m->P) {
        enms_fail(err, errlen, ENMS_EINVAL, "arima artifact: model is incomplete");
        return NULL;
    }
    const struct arima_spec *s = &m->spec;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        goto nomem;
    if (!cJSON_AddStringToObject(o, "model", "arima") ||
        !cJSON_AddNumberToObject(o, "version", ARTIFACT_VERSION) ||
        add_ints(o, "order", s->order.p, s->order.d, s->order.q) ||
        add_ints(o, "seasonal", s->order.P, s->order.D, s->order.Q) ||
        !cJSON_AddNumberToObject(o, "period", s->order.m) ||
        !cJSON_AddBoolToObject(o, "include_mean", s->include_mean != 0) ||
        !cJSON_AddBoolToObject(o, "include_drift", s->include_drift != 0) ||
        !cJSON_AddNumberToObject(o, "fourier_k", s->fourier_k) ||
        !cJSON_AddNumberToObject(o, "fourier_period", s->fourier_period) ||
        !cJSON_AddStringToObject(o, "method", method_name(s->method)) ||
        add_array(o, "coef", m->coef, m->narma + m->nreg) || add_num(o, "sigma2", m->sigma2) ||
        add_num(o, "loglik", m->loglik) || add_num(o, "aic", m->aic) ||
        add_num(o, "aicc", m->aicc) || add_num(o, "bic", m->bic) ||
        !cJSON_AddNumberToObject(o, "n", (double)m->n) ||
        !cJSON_AddNumberToObject(o, "nused", (double)m->nused))
        goto nomem;
    cJSON *st = cJSON_AddObjectToObject(o, "state");
    if (!st || add_array(st, "a", m->a, m->rd) || add_array(st, "P", m->P, m->rd * m->rd))
        goto nomem;
    return o;
nomem:
    cJSON_Delete(o);
    enms_fail(err, errlen, ENMS_ENOMEM, "arima artifact: out of memory");
    return NULL;
}

/* ---- loader ----------------------------------------------------------- */

static int get_int(const cJSON *o, const char *name, int lo, int hi, int *out, char *err,
                   size_t errlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(it))
        return enms_fail(err, errlen, ENMS_EINVAL, "arima artifact: %s must be a number", name);
    double v = it->valuedouble;
    if (!(v >= lo && v <= hi) || v != floor(v))
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "arima artifact: %s must be an integer in %d..%d", name, lo, hi);
    *out = (int)v;
    return 0;
}

static int get_bool(const cJSON *o, const char *name, int *out, char *err, size_t errlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsBool(it))
        return enms_fail(err, errlen, ENMS_EINVAL, "arima artifact: %s must be true or false",
                         name);
    *out = cJSON_IsTrue(it) ? 1 : 0;
    return 0;
}

/* A number, or null meaning "not available" when nullable. */
static int get_num(const cJSON *o, const char *name, int nullable, double *out, char *err,
                   size_t errlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
    if (nullable && cJSON_IsNull(it)) {
        *out = NAN;
        return 0;
    }
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble))
        return enms_fail(err, errlen, ENMS_EINVAL, "arima artifact: %s must be a finite number",
                         name);
    *out = it->valuedouble;
    return 0;
}

static int get_triple(const cJSON *o, const char *name, int hi2, int *a, int *b, int *c, char *err,
                      size_t errlen)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, name);
    int v[3];
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != 3)
        return enms_fail(err, errlen, ENMS_EINVAL, "arima artifact: %s must be 3 integers", name);
    for (int i = 0; i < 3; i++) {
        const cJSON *it = cJSON_GetArrayItem(arr, i);
        int hi = i == 1 ? hi2 : ARIMA_MAX_P;
        if (!cJSON_IsNumber(it) || !(it->valuedouble >= 0 && it->valuedouble <= hi) ||
            it->valuedouble != floor(it->valuedouble))
            return enms_fail(err, errlen, ENMS_EINVAL,
                             "arima artifact: %s must be 3 small non-negative integers", name);
        v[i] = (int)it->valuedouble;
    }
    *a = v[0];
    *b = v[1];
    *c = v[2];
    return 0;
}

/* Reads exactly n finite numbers into a new array (caller frees). */
static int get_array(const cJSON *o, const char *name, size_t n, double **out, char *err,
                     size_t errlen)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, name);
    *out = NULL;
    if (!cJSON_IsArray(arr))
        return enms_fail(err, errlen, ENMS_EINVAL, "arima artifact: %s must be an array", name);
    /* Count without cJSON_GetArraySize's int, bounded by n + 1. */
    size_t k = 0;
    for (const cJSON *it = arr->child; it && k <= n; it = it->next)
        k++;
    if (k != n)
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "arima artifact: %s must have %zu values for these orders", name, n);
    double *v = malloc((n ? n : 1) * sizeof *v);
    if (!v)
        return enms_fail(err, errlen, ENMS_ENOMEM, "arima artifact: out of memory");
    size_t i = 0;
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble)) {
            free(v);
            return enms_fail(err, errlen, ENMS_EINVAL,
                             "arima artifact: %s[%zu] must be a finite number", name, i);
        }
        v[i] = it->valuedouble;
    }
    *out = v;
    return 0;
}

int arima_from_json(const cJSON *o, struct arima_model **out, char *err, size_t errlen)
{
    struct arima_model *m = NULL;
    int rc, n, nused, version;
    const char *method;
    *out = NULL;
    if (!cJSON_IsObject(o))
        return enms_fail(err, errlen, ENMS_EINVAL, "arima artifact: not a JSON object");
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "model");
    if (!cJSON_IsString(kind) || strcmp(kind->valuestring, "arima") != 0)
        return enms_fail(err, errlen, ENMS_EINVAL, "arima artifact: model must be \"arima\"");
    if ((rc = get_int(o, "version", 1, ARTIFACT_VERSION, &version, err, errlen)) != 0)
        return rc;
    m = calloc(1, sizeof *m);
    if (!m)
        return enms_fail(err, errlen, ENMS_ENOMEM, "arima artifact: out of memory");
    struct arima_spec *s = &m->spec;
    if ((rc = get_triple(o, "order", ARIMA_MAX_D, &s->order.p, &s->order.d, &s->order.q, err,
                         errlen)) != 0 ||
        (rc = get_triple(o, "seasonal", 2, &s->order.P, &s->order.D, &s->order.Q, err, errlen)) !=
            0 ||
        (rc = get_int(o, "period", 1, ARIMA_MAX_PERIOD, &s->order.m, err, errlen)) != 0 ||
        (rc = get_bool(o, "include_mean", &s->include_mean, err, errlen)) != 0 ||
        (rc = get_bool(o, "include_drift", &s->include_drift, err, errlen)) != 0 ||
        (rc = get_int(o, "fourier_k", 0, ARIMA_MAX_FOURIER, &s->fourier_k, err, errlen)) != 0 ||
        (rc = get_int(o, "fourier_period", 0, 1000000, &s->fourier_period, err, errlen)) != 0 ||
        (rc = get_int(o, "n", 1, ARIMA_MAX_N, &n, err, errlen)) != 0 ||
        (rc = get_int(o, "nused", 1, ARIMA_MAX_N, &nused, err, errlen)) != 0)
        goto fail;
    const cJSON *mj = cJSON_GetObjectItemCaseSensitive(o, "method");
    method = cJSON_IsString(mj) ? mj->valuestring : "";
    if (strcmp(method, "CSS-ML") == 0)
        s->method = ARIMA_CSS_ML;
    else if (strcmp(method, "ML") == 0)
        s->method = ARIMA_ML;
    else if (strcmp(method, "CSS") == 0)
        s->method = ARIMA_CSS;
    else {
        rc =
            enms_fail(err, errlen, ENMS_EINVAL, "arima artifact: method must be CSS-ML, ML or CSS");
        goto fail;
    }
    if ((rc = arima_spec_check(s, err, errlen)) != 0)
        goto fail;
    m->n = (size_t)n;
    m->nused = (size_t)nused;
    if (m->nused > m->n) {
        rc = enms_fail(err, errlen, ENMS_EINVAL, "arima artifact: nused exceeds n");
        goto fail;
    }
    if ((rc = get_num(o, "sigma2", 0, &m->sigma2, err, errlen)) != 0 ||
        (rc = get_num(o, "loglik", 1, &m->loglik, err, errlen)) != 0 ||
        (rc = get_num(o, "aic", 1, &m->aic, err, errlen)) != 0 ||
        (rc = get_num(o, "aicc", 1, &m->aicc, err, errlen)) != 0 ||
        (rc = get_num(o, "bic", 1, &m->bic, err, errlen)) != 0)
        goto fail;
    if (!(m->sigma2 > 0.0)) {
        rc = enms_fail(err, errlen, ENMS_EINVAL, "arima artifact: sigma2 must be positive");
        goto fail;
    }
    if ((rc = get_array(o, "coef", arima_ncoef(s), &m->coef, err, errlen)) != 0)
        goto fail;
    /* arima_prepare sets r, nd, rd (bounded by arima_spec_check). */
    if ((rc = arima_prepare(m, err, errlen)) != 0)
        goto fail;
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "state");
    if (!cJSON_IsObject(st)) {
        rc = enms_fail(err, errlen, ENMS_EINVAL, "arima artifact: state must be an object");
        goto fail;
    }
    if ((rc = get_array(st, "a", m->rd, &m->a, err, errlen)) != 0 ||
        (rc = get_array(st, "P", m->rd * m->rd, &m->P, err, errlen)) != 0)
        goto fail;
    *out = m;
    return 0;
fail:
    arima_free(m);
    return rc;
}

int arima_from_json_text(const char *text, size_t len, struct arima_model **out, char *err,
                         size_t errlen)
{
    *out = NULL;
    if (!text || len == 0)
        return enms_fail(err, errlen, ENMS_EINVAL, "arima artifact: empty");
    if (len > MAX_TEXT)
        return enms_fail(err, errlen, ENMS_EINVAL, "arima artifact: larger than %u bytes",
                         MAX_TEXT);
    cJSON *o = cJSON_ParseWithLength(text, len);
    if (!o)
        return enms_fail(err, errlen, ENMS_EINVAL, "arima artifact: not valid JSON");
    int rc = arima_from_json(o, out, err, errlen);
    cJSON_Delete(o);
    return rc;
}
