/* fit.c - `enmsctl fit`: fits one model to a CSV file outside the queue and
 * prints the result as JSON, for analysts and for checking our numbers
 * against R (docs/models-fit.md).
 *
 * It owns the reading of a small column-oriented CSV table and the mapping
 * of options to the model calls; the models themselves live in
 * worker/models/ and know nothing of files. No database or Redis. */
#include "csv_reading.h"
#include "ctl.h"
#include "../common/error.h"
#include "../worker/models/anomaly.h"
#include "../worker/models/arima.h"
#include "../worker/models/arima_auto.h"
#include "../worker/models/baseline.h"

#include <cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Bounds on the input: a fit is an interactive tool, not a bulk loader. */
#define FIT_MAX_BYTES   ((long)64 * 1024 * 1024)
#define FIT_MAX_ROWS    ((size_t)200000)
#define FIT_MAX_COLS    64
#define FIT_MAX_HORIZON 10000

/* A CSV file held in memory: cells point into buf, which the table owns. */
struct fit_table {
    char *buf;
    size_t ncols, nrows;
    char *names[FIT_MAX_COLS];
    char **cells;   /* nrows * ncols, row-major */
    size_t *lineno; /* file line of each row, for messages */
};

static void table_free(struct fit_table *t)
{
    free(t->buf);
    free(t->cells);
    free(t->lineno);
    memset(t, 0, sizeof *t);
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

/* Splits one line (NUL-terminated, modified in place) into at most max
 * fields, RFC 4180 quotes allowed ("" is a quote). Returns the number of
 * fields, or -1 for a bad quote or too many fields. */
static int split_fields(char *line, char **fields, int max)
{
    int n = 0;
    char *p = line;
    for (;;) {
        if (n == max)
            return -1;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '"') {
            char *w = ++p;
            fields[n++] = w;
            for (;;) {
                if (*p == '\0')
                    return -1;
                if (*p == '"' && p[1] == '"') {
                    *w++ = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else {
                    *w++ = *p++;
                }
            }
            *w = '\0';
            while (*p == ' ' || *p == '\t' || *p == '\r')
                p++;
            if (*p == '\0')
                return n;
            if (*p != ',')
                return -1;
            p++;
        } else {
            fields[n++] = p;
            char *comma = strchr(p, ',');
            if (!comma) {
                fields[n - 1] = trim(fields[n - 1]);
                return n;
            }
            *comma = '\0';
            fields[n - 1] = trim(fields[n - 1]);
            p = comma + 1;
        }
    }
}

/* Reads path into *t: lines starting with '#' before the header are
 * comments, the header names the columns, every data line has as many
 * fields. A one-column file keeps its blank lines as empty cells (missing
 * values); wider files skip them. Returns 0 or ENMS_EINVAL / ENMS_EIO /
 * ENMS_ETOOBIG / ENMS_ENOMEM with a sentence in err; on success the caller
 * frees *t with table_free(), on error it is empty. */
static int table_read(const char *path, struct fit_table *t, char *err, size_t errlen)
{
    FILE *f = NULL;
    long size;
    size_t cap = 0, lineno = 0;
    char *p, *fields[FIT_MAX_COLS];
    int rc = ENMS_OK, have_header = 0;

    memset(t, 0, sizeof *t);
    f = fopen(path, "rb");
    if (!f) {
        rc = enms_fail(err, errlen, ENMS_EINVAL, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        rc = enms_fail(err, errlen, ENMS_EIO, "%s: cannot read: %s", path, strerror(errno));
        goto fail;
    }
    if (size > FIT_MAX_BYTES) {
        rc = enms_fail(err, errlen, ENMS_ETOOBIG, "%s: larger than %ld bytes", path, FIT_MAX_BYTES);
        goto fail;
    }
    t->buf = malloc((size_t)size + 1);
    if (!t->buf) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        goto fail;
    }
    if (fread(t->buf, 1, (size_t)size, f) != (size_t)size) {
        rc = enms_fail(err, errlen, ENMS_EIO, "%s: cannot read", path);
        goto fail;
    }
    t->buf[size] = '\0';
    if (memchr(t->buf, '\0', (size_t)size)) {
        rc = enms_fail(err, errlen, ENMS_EINVAL, "%s: not a text file (NUL byte)", path);
        goto fail;
    }
    p = t->buf;
    if ((unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB && (unsigned char)p[2] == 0xBF)
        p += 3;
    while (*p) {
        char *line = p;
        char *nl = strchr(p, '\n');
        if (nl) {
            *nl = '\0';
            p = nl + 1;
        } else {
            p += strlen(p);
        }
        lineno++;
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r')
            line[--len] = '\0';
        if (!have_header) {
            if (csv_reading_is_blank(line, len) || line[0] == '#')
                continue;
            int n = split_fields(line, fields, FIT_MAX_COLS);
            if (n < 0) {
                rc = enms_fail(err, errlen, ENMS_EINVAL,
                               "%s: line %zu: malformed header (bad quote or more than %d columns)",
                               path, lineno, FIT_MAX_COLS);
                goto fail;
            }
            for (int i = 0; i < n; i++) {
                t->names[i] = fields[i];
                for (int j = 0; j < i; j++)
                    if (strcasecmp(fields[i], fields[j]) == 0) {
                        rc = enms_fail(err, errlen, ENMS_EINVAL, "%s: column \"%s\" given twice",
                                       path, fields[i]);
                        goto fail;
                    }
            }
            t->ncols = (size_t)n;
            have_header = 1;
            continue;
        }
        if (csv_reading_is_blank(line, len) && (t->ncols > 1 || !*p))
            continue;
        if (t->nrows == FIT_MAX_ROWS) {
            rc = enms_fail(err, errlen, ENMS_ETOOBIG, "%s: more than %zu rows", path, FIT_MAX_ROWS);
            goto fail;
        }
        int n = split_fields(line, fields, FIT_MAX_COLS);
        if (n != (int)t->ncols) {
            rc = enms_fail(err, errlen, ENMS_EINVAL, "%s: line %zu: expected %zu fields, found %d",
                           path, lineno, t->ncols, n);
            goto fail;
        }
        if (t->nrows == cap) {
            size_t ncap = cap ? cap * 2 : 1024;
            char **cells = realloc(t->cells, ncap * t->ncols * sizeof *cells);
            if (cells)
                t->cells = cells;
            size_t *lines = cells ? realloc(t->lineno, ncap * sizeof *lines) : NULL;
            if (!lines) {
                rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
                goto fail;
            }
            t->lineno = lines;
            cap = ncap;
        }
        memcpy(t->cells + t->nrows * t->ncols, fields, t->ncols * sizeof *fields);
        t->lineno[t->nrows++] = lineno;
    }
    if (!have_header) {
        rc = enms_fail(err, errlen, ENMS_EINVAL, "%s: empty file (no header line)", path);
        goto fail;
    }
    fclose(f);
    return ENMS_OK;
fail:
    if (f)
        fclose(f);
    table_free(t);
    return rc;
}

/* Index of the column named name (case-insensitive), or -1. */
static int table_column(const struct fit_table *t, const char *name)
{
    for (size_t i = 0; i < t->ncols; i++)
        if (strcasecmp(t->names[i], name) == 0)
            return (int)i;
    return -1;
}

static const char *cell(const struct fit_table *t, size_t row, int col)
{
    return t->cells[row * t->ncols + (size_t)col];
}

/* Reads a numeric cell: empty, NA or NaN is missing (NAN). Returns 0 or
 * ENMS_EINVAL naming the line and column. */
static int cell_number(const struct fit_table *t, size_t row, int col, double *out, char *err,
                       size_t errlen)
{
    const char *s = cell(t, row, col);
    char *end = NULL;
    if (s[0] == '\0' || strcasecmp(s, "NA") == 0 || strcasecmp(s, "NaN") == 0) {
        *out = NAN;
        return ENMS_OK;
    }
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v))
        return enms_fail(err, errlen, ENMS_EINVAL, "line %zu, column %s: \"%.40s\" is not a number",
                         t->lineno[row], t->names[col], s);
    *out = v;
    return ENMS_OK;
}

/* Parses a decimal integer in [lo, hi] from the whole of text. */
static int parse_int(const char *text, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || errno == ERANGE || v < lo || v > hi)
        return ENMS_EINVAL;
    *out = v;
    return ENMS_OK;
}

/* Parses "a,b,c" with each in [0, hi]. */
static int parse_triple(const char *text, int hi, int out[3])
{
    char buf[64];
    char *save = NULL, *tok;
    int n = 0;
    if (strlen(text) >= sizeof buf)
        return ENMS_EINVAL;
    strcpy(buf, text);
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        long v;
        if (n == 3 || parse_int(trim(tok), 0, hi, &v) != ENMS_OK)
            return ENMS_EINVAL;
        out[n++] = (int)v;
    }
    return n == 3 ? ENMS_OK : ENMS_EINVAL;
}

enum fit_model { FIT_NONE, FIT_ARIMA, FIT_BASELINE, FIT_ANOMALY };

struct fit_opts {
    enum fit_model model;
    const char *csv, *column, *y, *x;
    long period, horizon, repeat;
    int order[3], seasonal[3];
    int has_order, has_seasonal, log, mean; /* mean: -1 default, 0 off, 1 on */
    double contamination;
};

static void fit_usage(FILE *out)
{
    fprintf(out,
            "usage: enmsctl fit --model forecast_arima --csv FILE [--column NAME] [--period M]\n"
            "                   [--horizon H] [--order p,d,q] [--seasonal P,D,Q] [--log]\n"
            "                   [--mean | --no-mean] [--repeat N]\n"
            "       enmsctl fit --model baseline --csv FILE --y COLUMN --x COLUMN[,COLUMN...]\n"
            "       enmsctl fit --model anomaly --csv FILE [--contamination RATE]\n"
            "Prints the fitted model as JSON on stdout (docs/models-fit.md).\n");
}

static int bad(const char *fmt, const char *what)
{
    fprintf(stderr, "enmsctl fit: ");
    fprintf(stderr, fmt, what);
    fprintf(stderr, "\n");
    return ENMS_EINVAL;
}

static int parse_opts(int argc, char **argv, struct fit_opts *o)
{
    memset(o, 0, sizeof *o);
    o->period = 1;
    o->horizon = -1;
    o->repeat = 1;
    o->mean = -1;
    o->contamination = NAN;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int missing = 0;
        long n;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fit_usage(stdout);
            return 1;
        } else if (strcmp(argv[i], "--log") == 0) {
            o->log = 1;
        } else if (strcmp(argv[i], "--mean") == 0) {
            o->mean = 1;
        } else if (strcmp(argv[i], "--no-mean") == 0) {
            o->mean = 0;
        } else if ((v = ctl_option(argc, argv, &i, "--model", &missing))) {
            if (strcmp(v, "forecast_arima") == 0)
                o->model = FIT_ARIMA;
            else if (strcmp(v, "baseline") == 0)
                o->model = FIT_BASELINE;
            else if (strcmp(v, "anomaly") == 0)
                o->model = FIT_ANOMALY;
            else
                return bad("--model: unknown model \"%s\" (forecast_arima, baseline, anomaly)", v);
        } else if (!missing && (v = ctl_option(argc, argv, &i, "--csv", &missing))) {
            o->csv = v;
        } else if (!missing && (v = ctl_option(argc, argv, &i, "--column", &missing))) {
            o->column = v;
        } else if (!missing && (v = ctl_option(argc, argv, &i, "--y", &missing))) {
            o->y = v;
        } else if (!missing && (v = ctl_option(argc, argv, &i, "--x", &missing))) {
            o->x = v;
        } else if (!missing && (v = ctl_option(argc, argv, &i, "--period", &missing))) {
            if (parse_int(v, 1, ARIMA_MAX_PERIOD, &n) != ENMS_OK)
                return bad("--period: \"%s\" is not an integer in 1..1000", v);
            o->period = n;
        } else if (!missing && (v = ctl_option(argc, argv, &i, "--horizon", &missing))) {
            if (parse_int(v, 1, FIT_MAX_HORIZON, &n) != ENMS_OK)
                return bad("--horizon: \"%s\" is not an integer in 1..10000", v);
            o->horizon = n;
        } else if (!missing && (v = ctl_option(argc, argv, &i, "--repeat", &missing))) {
            if (parse_int(v, 1, 1000, &o->repeat) != ENMS_OK)
                return bad("--repeat: \"%s\" is not an integer in 1..1000", v);
        } else if (!missing && (v = ctl_option(argc, argv, &i, "--order", &missing))) {
            if (parse_triple(v, ARIMA_MAX_P, o->order) != ENMS_OK || o->order[1] > ARIMA_MAX_D)
                return bad("--order: \"%s\" is not p,d,q (p, q in 0..20, d in 0..3)", v);
            o->has_order = 1;
        } else if (!missing && (v = ctl_option(argc, argv, &i, "--seasonal", &missing))) {
            if (parse_triple(v, ARIMA_MAX_SP, o->seasonal) != ENMS_OK || o->seasonal[1] > 2)
                return bad("--seasonal: \"%s\" is not P,D,Q (P, Q in 0..4, D in 0..2)", v);
            o->has_seasonal = 1;
        } else if (!missing && (v = ctl_option(argc, argv, &i, "--contamination", &missing))) {
            char *end = NULL;
            double c = strtod(v, &end);
            if (end == v || *end != '\0' || !(c > 0 && c < 0.5))
                return bad("--contamination: \"%s\" is not a rate in (0, 0.5)", v);
            o->contamination = c;
        } else if (missing) {
            return bad("%s: needs a value", argv[i]);
        } else {
            fit_usage(stderr);
            return bad("unknown option \"%s\"", argv[i]);
        }
    }
    if (o->model == FIT_NONE)
        return bad("--model is required (forecast_arima, baseline, anomaly)%s", "");
    if (!o->csv)
        return bad("--csv FILE is required%s", "");
    if (o->model != FIT_ARIMA &&
        (o->column || o->has_order || o->has_seasonal || o->log || o->mean >= 0 || o->period != 1 ||
         o->horizon > 0 || o->repeat != 1))
        return bad("--column, --period, --horizon, --order, --seasonal, --log, --mean and "
                   "--repeat are "
                   "for --model forecast_arima%s",
                   "");
    if (o->model != FIT_BASELINE && (o->y || o->x))
        return bad("--y and --x are for --model baseline%s", "");
    if (o->model != FIT_ANOMALY && !isnan(o->contamination))
        return bad("--contamination is for --model anomaly%s", "");
    if (o->model == FIT_BASELINE && (!o->y || !o->x))
        return bad("--model baseline needs --y COLUMN and --x COLUMN[,COLUMN...]%s", "");
    if (o->has_seasonal && !o->has_order)
        return bad("--seasonal needs --order (or leave both out for automatic selection)%s", "");
    if (o->has_seasonal && o->period == 1 && (o->seasonal[0] || o->seasonal[1] || o->seasonal[2]))
        return bad("--seasonal needs --period M greater than 1%s", "");
    return ENMS_OK;
}

/* Prints obj on stdout; 0 or ENMS_ENOMEM. */
static int print_json(const cJSON *obj)
{
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
    if (!text) {
        fprintf(stderr, "enmsctl fit: out of memory\n");
        return ENMS_ENOMEM;
    }
    printf("%s\n", text);
    free(text);
    return ENMS_OK;
}

/* JSON number, or null for NAN and infinities. */
static void add_number(cJSON *obj, const char *name, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(obj, name, v);
    else
        cJSON_AddNullToObject(obj, name);
}

/* Names as R prints them: ar1.., ma1.., sar1.., sma1.., then intercept or
 * drift, then the Fourier pairs S1-m, C1-m as forecast::fourier names them. */
static void arima_coef_name(const struct arima_model *m, size_t k, char *buf, size_t len)
{
    const struct arima_order *o = &m->spec.order;
    size_t p = (size_t)o->p, q = (size_t)o->q, P = (size_t)o->P, Q = (size_t)o->Q;
    int dd = o->d + o->D;
    if (k < p) {
        snprintf(buf, len, "ar%zu", k + 1);
        return;
    }
    k -= p;
    if (k < q) {
        snprintf(buf, len, "ma%zu", k + 1);
        return;
    }
    k -= q;
    if (k < P) {
        snprintf(buf, len, "sar%zu", k + 1);
        return;
    }
    k -= P;
    if (k < Q) {
        snprintf(buf, len, "sma%zu", k + 1);
        return;
    }
    k -= Q;
    if (m->spec.include_mean && dd == 0) {
        if (k == 0) {
            snprintf(buf, len, "intercept");
            return;
        }
        k--;
    }
    if (m->spec.include_drift && dd <= 1) {
        if (k == 0) {
            snprintf(buf, len, "drift");
            return;
        }
        k--;
    }
    snprintf(buf, len, "%c%zu-%d", k % 2 == 0 ? 'S' : 'C', k / 2 + 1, m->spec.fourier_period);
}

/* CPU time of this process so far, in seconds (all threads). */
static double process_cpu_seconds(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0)
        return 0;
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One fit of y: the given orders, or the automatic selection (which fills
 * rep). On success *model is the caller's to arima_free(). */
static int fit_arima_once(const struct fit_opts *o, const double *y, size_t n, int m,
                          struct arima_model **model, struct arima_auto_report *rep, char *err,
                          size_t errlen)
{
    if (o->has_order) {
        struct arima_spec spec = {0};
        spec.order = (struct arima_order){o->order[0],
                                          o->order[1],
                                          o->order[2],
                                          o->seasonal[0],
                                          o->seasonal[1],
                                          o->seasonal[2],
                                          o->has_seasonal ? m : 1};
        spec.include_mean = o->mean != 0;
        spec.method = ARIMA_CSS_ML;
        int rc = arima_spec_check(&spec, err, errlen);
        if (rc != ENMS_OK)
            return rc;
        return arima_fit(y, n, &spec, NULL, model, err, errlen);
    }
    struct arima_auto_opts ao;
    arima_auto_defaults(&ao, m);
    if (o->mean == 0)
        ao.allow_mean = ao.allow_drift = 0;
    return arima_auto(y, n, &ao, NULL, model, rep, err, errlen);
}

static int fit_arima(const struct fit_opts *o, const struct fit_table *t)
{
    char err[512], label[128], name[32];
    double *y = NULL, *mean = NULL, *se = NULL;
    struct arima_model *model = NULL;
    struct arima_auto_report rep;
    cJSON *out = NULL;
    size_t n = t->nrows, missing = 0;
    int rc, col;
    int m = (int)o->period;

    col = o->column ? table_column(t, o->column) : table_column(t, "y");
    if (col < 0 && o->column) {
        fprintf(stderr, "enmsctl fit: %s: no column named \"%s\"\n", o->csv, o->column);
        return ENMS_EINVAL;
    }
    if (col < 0)
        col = 0;
    size_t h = o->horizon > 0 ? (size_t)o->horizon : (m > 1 ? 2 * (size_t)m : 10);
    y = malloc((n ? n : 1) * sizeof *y);
    mean = malloc(h * sizeof *mean);
    se = malloc(h * sizeof *se);
    if (!y || !mean || !se) {
        rc = enms_fail(err, sizeof err, ENMS_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        if ((rc = cell_number(t, i, col, &y[i], err, sizeof err)) != ENMS_OK)
            goto fail;
        if (isnan(y[i])) {
            missing++;
        } else if (o->log) {
            if (y[i] <= 0) {
                rc = enms_fail(err, sizeof err, ENMS_EINVAL,
                               "line %zu: --log needs positive values, found %g", t->lineno[i],
                               y[i]);
                goto fail;
            }
            y[i] = log(y[i]);
        }
    }
    /* Enough to estimate anything and, when seasonal, to see two cycles. */
    size_t need = m > 1 ? 2 * (size_t)m + 2 : 10;
    if (n - missing < need) {
        rc = series_insufficient(err, sizeof err, n - missing, need, "observations");
        goto fail;
    }
    /* Timed like R's proc.time() around auto.arima(): the fit alone, without
     * start-up, CSV parsing or output, averaged over --repeat runs. */
    double cpu_start = process_cpu_seconds();
    for (long r = 0; r < o->repeat; r++) {
        arima_free(model);
        model = NULL;
        if ((rc = fit_arima_once(o, y, n, m, &model, &rep, err, sizeof err)) != ENMS_OK)
            goto fail;
    }
    double fit_cpu_seconds = (process_cpu_seconds() - cpu_start) / (double)o->repeat;
    if ((rc = arima_forecast(model, h, mean, se, err, sizeof err)) != ENMS_OK)
        goto fail;

    const struct arima_order *ord = &model->spec.order;
    out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "model_type", "forecast_arima");
    cJSON *mo = cJSON_AddObjectToObject(out, "model");
    cJSON *coefs = mo ? cJSON_AddArrayToObject(mo, "coefficients") : NULL;
    cJSON *fc = cJSON_AddArrayToObject(out, "forecasts");
    if (!coefs || !fc) {
        rc = enms_fail(err, sizeof err, ENMS_ENOMEM, "out of memory");
        goto fail;
    }
    arima_label(&model->spec, label, sizeof label);
    cJSON_AddStringToObject(mo, "label", label);
    int order[3] = {ord->p, ord->d, ord->q}, seas[3] = {ord->P, ord->D, ord->Q};
    cJSON_AddItemToObject(mo, "order", cJSON_CreateIntArray(order, 3));
    cJSON_AddItemToObject(mo, "seasonal", cJSON_CreateIntArray(seas, 3));
    cJSON_AddNumberToObject(mo, "period", ord->m);
    cJSON_AddBoolToObject(mo, "include_mean", model->spec.include_mean && ord->d + ord->D == 0);
    cJSON_AddBoolToObject(mo, "include_drift", model->spec.include_drift && ord->d + ord->D <= 1);
    cJSON_AddNumberToObject(mo, "fourier_k", model->spec.fourier_k);
    for (size_t k = 0; k < model->narma + model->nreg; k++) {
        cJSON *c = cJSON_CreateObject();
        arima_coef_name(model, k, name, sizeof name);
        cJSON_AddStringToObject(c, "name", name);
        add_number(c, "value", model->coef[k]);
        cJSON_AddItemToArray(coefs, c);
    }
    add_number(mo, "sigma2", model->sigma2);
    add_number(mo, "loglik", model->loglik);
    add_number(mo, "aic", model->aic);
    add_number(mo, "aicc", model->aicc);
    add_number(mo, "bic", model->bic);
    cJSON_AddBoolToObject(mo, "converged", model->converged);
    cJSON_AddNumberToObject(mo, "nused", (double)model->nused);
    if (o->has_order) {
        cJSON_AddNullToObject(out, "selection");
    } else {
        cJSON *sel = cJSON_AddObjectToObject(out, "selection");
        cJSON_AddStringToObject(sel, "method", "auto (stepwise, AICc)");
        cJSON_AddNumberToObject(sel, "d", rep.d);
        cJSON_AddNumberToObject(sel, "D", rep.D);
        cJSON_AddNumberToObject(sel, "models_fitted", rep.models_fitted);
    }
    add_number(out, "fit_cpu_seconds", fit_cpu_seconds);
    cJSON_AddStringToObject(out, "scale", o->log ? "log" : "original");
    cJSON_AddNumberToObject(out, "n", (double)n);
    cJSON_AddNumberToObject(out, "missing", (double)missing);
    for (size_t k = 0; k < h; k++) {
        double lo80, hi80, lo95, hi95;
        arima_interval(&mean[k], &se[k], 1, 0.80, &lo80, &hi80);
        arima_interval(&mean[k], &se[k], 1, 0.95, &lo95, &hi95);
        cJSON *f = cJSON_CreateObject();
        cJSON_AddNumberToObject(f, "h", (double)(k + 1));
        add_number(f, "mean", mean[k]);
        add_number(f, "se", se[k]);
        add_number(f, "lo80", lo80);
        add_number(f, "hi80", hi80);
        add_number(f, "lo95", lo95);
        add_number(f, "hi95", hi95);
        cJSON_AddItemToArray(fc, f);
    }
    rc = print_json(out);
    goto done;
fail:
    fprintf(stderr, "enmsctl fit: %s\n", err);
done:
    cJSON_Delete(out);
    arima_free(model);
    free(se);
    free(mean);
    free(y);
    return rc;
}

static int fit_baseline(const struct fit_opts *o, const struct fit_table *t)
{
    char err[512], xlist[1024];
    int cols[BASELINE_MAX_COEF];
    size_t p = 1, n = 0, dropped = 0;
    double *x = NULL, *y = NULL;
    struct baseline_ols ols;
    cJSON *out = NULL;
    int rc;

    if ((cols[0] = table_column(t, o->y)) < 0) {
        rc = enms_fail(err, sizeof err, ENMS_EINVAL, "--y: no column named \"%s\"", o->y);
        goto fail;
    }
    if (strlen(o->x) >= sizeof xlist) {
        rc = enms_fail(err, sizeof err, ENMS_EINVAL, "--x: list too long");
        goto fail;
    }
    strcpy(xlist, o->x);
    char *save = NULL;
    for (char *tok = strtok_r(xlist, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        tok = trim(tok);
        int c = table_column(t, tok);
        if (c < 0) {
            rc = enms_fail(err, sizeof err, ENMS_EINVAL, "--x: no column named \"%s\"", tok);
            goto fail;
        }
        if (p == BASELINE_MAX_COEF) {
            rc = enms_fail(err, sizeof err, ENMS_EINVAL, "--x: at most %d columns",
                           BASELINE_MAX_COEF - 1);
            goto fail;
        }
        for (size_t j = 0; j < p; j++)
            if (cols[j] == c) {
                rc = enms_fail(err, sizeof err, ENMS_EINVAL,
                               "--x: column \"%s\" used twice (or as --y too)", tok);
                goto fail;
            }
        cols[p++] = c;
    }
    if (p == 1) {
        rc = enms_fail(err, sizeof err, ENMS_EINVAL, "--x: name at least one column");
        goto fail;
    }
    x = malloc((t->nrows ? t->nrows : 1) * p * sizeof *x);
    y = malloc((t->nrows ? t->nrows : 1) * sizeof *y);
    if (!x || !y) {
        rc = enms_fail(err, sizeof err, ENMS_ENOMEM, "out of memory");
        goto fail;
    }
    /* Row i of the design is the intercept and the --x columns; rows with a
     * missing value anywhere are left out and counted. */
    for (size_t i = 0; i < t->nrows; i++) {
        double row[BASELINE_MAX_COEF] = {0};
        int complete = 1;
        for (size_t j = 0; j < p; j++) {
            if ((rc = cell_number(t, i, cols[j], &row[j], err, sizeof err)) != ENMS_OK)
                goto fail;
            complete &= !isnan(row[j]);
        }
        if (!complete) {
            dropped++;
            continue;
        }
        y[n] = row[0];
        x[n * p] = 1.0;
        for (size_t j = 1; j < p; j++)
            x[n * p + j] = row[j];
        n++;
    }
    if (n < p + 2) {
        rc = series_insufficient(err, sizeof err, n, p + 2, "complete rows");
        goto fail;
    }
    if ((rc = baseline_ols(x, y, n, p, &ols, err, sizeof err)) != ENMS_OK)
        goto fail;

    out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "model_type", "baseline");
    cJSON_AddStringToObject(out, "y", t->names[cols[0]]);
    cJSON *coefs = out ? cJSON_AddArrayToObject(out, "coefficients") : NULL;
    if (!coefs) {
        rc = enms_fail(err, sizeof err, ENMS_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t j = 0; j < p; j++) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "name", j == 0 ? "intercept" : t->names[cols[j]]);
        add_number(c, "value", ols.coef[j]);
        add_number(c, "se", ols.se[j]);
        cJSON_AddItemToArray(coefs, c);
    }
    add_number(out, "r2", ols.stats.r2);
    add_number(out, "adj_r2", ols.stats.adj_r2);
    add_number(out, "rmse", ols.stats.rmse);
    add_number(out, "cv_rmse", ols.stats.cv_rmse);
    add_number(out, "nmbe", ols.stats.nmbe);
    add_number(out, "ybar", ols.stats.ybar);
    cJSON_AddNumberToObject(out, "n", (double)ols.n);
    cJSON_AddNumberToObject(out, "p", (double)ols.p);
    cJSON_AddNumberToObject(out, "rows_dropped", (double)dropped);
    rc = print_json(out);
    goto done;
fail:
    fprintf(stderr, "enmsctl fit: %s\n", err);
done:
    cJSON_Delete(out);
    free(y);
    free(x);
    return rc;
}

static void format_iso(time_t ts, char *buf, size_t len)
{
    struct tm tm;
    gmtime_r(&ts, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *const DETECTOR_NAMES[ANOMALY_DETECTORS] = {"iforest", "residual"};

static int fit_anomaly(const struct fit_opts *o, const struct fit_table *t)
{
    char err[512], when[32];
    size_t n = t->nrows;
    time_t *ts = NULL;
    double *energy = NULL, *prod = NULL, *temp = NULL;
    unsigned char *labels = NULL;
    struct anomaly_result res;
    struct anomaly_config cfg;
    cJSON *out = NULL;
    int rc, fitted = 0;
    int c_ts = table_column(t, "ts"), c_e = table_column(t, "energy_kwh");
    int c_p = table_column(t, "production_count"), c_t = table_column(t, "outdoor_temp_c");
    int c_l = table_column(t, "label");

    memset(&res, 0, sizeof res);
    if (c_ts < 0 || c_e < 0) {
        rc = enms_fail(err, sizeof err, ENMS_EINVAL, "%s: needs columns ts and energy_kwh", o->csv);
        goto fail;
    }
    size_t alloc = n ? n : 1;
    ts = malloc(alloc * sizeof *ts);
    energy = malloc(alloc * sizeof *energy);
    prod = c_p >= 0 ? malloc(alloc * sizeof *prod) : NULL;
    temp = c_t >= 0 ? malloc(alloc * sizeof *temp) : NULL;
    labels = c_l >= 0 ? calloc(alloc, 1) : NULL;
    if (!ts || !energy || (c_p >= 0 && !prod) || (c_t >= 0 && !temp) || (c_l >= 0 && !labels)) {
        rc = enms_fail(err, sizeof err, ENMS_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        int64_t when64;
        char terr[256];
        const char *s = cell(t, i, c_ts);
        if (csv_reading_parse_ts(s, strlen(s), &when64, terr, sizeof terr) != ENMS_OK) {
            rc = enms_fail(err, sizeof err, ENMS_EINVAL, "line %zu, column ts: %s", t->lineno[i],
                           terr);
            goto fail;
        }
        ts[i] = (time_t)when64;
        if (i > 0 && ts[i] < ts[i - 1]) {
            rc = enms_fail(err, sizeof err, ENMS_EINVAL,
                           "line %zu: timestamps must be in ascending order", t->lineno[i]);
            goto fail;
        }
        if ((rc = cell_number(t, i, c_e, &energy[i], err, sizeof err)) != ENMS_OK ||
            (prod && (rc = cell_number(t, i, c_p, &prod[i], err, sizeof err)) != ENMS_OK) ||
            (temp && (rc = cell_number(t, i, c_t, &temp[i], err, sizeof err)) != ENMS_OK))
            goto fail;
        if (labels) {
            const char *l = cell(t, i, c_l);
            if (strcmp(l, "1") == 0)
                labels[i] = 1;
            else if (l[0] != '\0' && strcmp(l, "0") != 0) {
                rc = enms_fail(err, sizeof err, ENMS_EINVAL,
                               "line %zu, column label: \"%.40s\" is not 0 or 1", t->lineno[i], l);
                goto fail;
            }
        }
    }
    struct series s = {.n = n,
                       .ts = ts,
                       .energy = energy,
                       .production = prod,
                       .temp_c = temp,
                       .skip = NULL,
                       .utc_offset_s = 0};
    anomaly_config_default(&cfg);
    if (!isnan(o->contamination))
        cfg.contamination = o->contamination;
    if ((rc = anomaly_fit(&s, NULL, labels, &cfg, NULL, &res, err, sizeof err)) != ENMS_OK)
        goto fail;
    fitted = 1;

    out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "model_type", "anomaly");
    cJSON_AddStringToObject(out, "default_detector", DETECTOR_NAMES[res.model.default_detector]);
    cJSON_AddNumberToObject(out, "n", (double)n);
    cJSON_AddBoolToObject(out, "labelled", labels != NULL);
    cJSON *dets = out ? cJSON_AddArrayToObject(out, "detectors") : NULL;
    cJSON *flagged = out ? cJSON_AddArrayToObject(out, "flagged") : NULL;
    if (!flagged || !dets) {
        rc = enms_fail(err, sizeof err, ENMS_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < res.n; i++)
        for (int d = 0; d < ANOMALY_DETECTORS; d++) {
            unsigned char sev = res.flags[d].severity[i];
            if (sev == ANOMALY_NONE)
                continue;
            cJSON *row = cJSON_CreateObject();
            format_iso(ts[i], when, sizeof when);
            cJSON_AddStringToObject(row, "ts", when);
            add_number(row, "value", energy[i]);
            add_number(row, "score", res.flags[d].score[i]);
            cJSON_AddStringToObject(row, "severity",
                                    sev == ANOMALY_CRITICAL ? "critical" : "warning");
            cJSON_AddStringToObject(row, "detector", DETECTOR_NAMES[d]);
            if (labels)
                cJSON_AddBoolToObject(row, "label", labels[i]);
            cJSON_AddItemToArray(flagged, row);
        }
    for (int d = 0; d < ANOMALY_DETECTORS; d++) {
        const struct anomaly_eval *ev = &res.eval[d];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "detector", DETECTOR_NAMES[d]);
        cJSON_AddNumberToObject(e, "hours", (double)ev->hours);
        cJSON_AddNumberToObject(e, "flagged", (double)ev->flagged);
        add_number(e, "anomaly_rate", ev->rate);
        add_number(e, "precision", ev->precision);
        add_number(e, "recall", ev->recall);
        add_number(e, "f1", ev->f1);
        cJSON_AddItemToArray(dets, e);
    }
    rc = print_json(out);
    goto done;
fail:
    fprintf(stderr, "enmsctl fit: %s\n", err);
done:
    cJSON_Delete(out);
    if (fitted)
        anomaly_result_free(&res);
    free(labels);
    free(temp);
    free(prod);
    free(energy);
    free(ts);
    return rc;
}

int ctl_fit(const struct enms_config *cfg, int argc, char **argv)
{
    (void)cfg;
    struct fit_opts o;
    struct fit_table t;
    char err[512];
    int rc = parse_opts(argc, argv, &o);
    if (rc != ENMS_OK)
        return rc > 0 ? ENMS_OK : rc;
    rc = table_read(o.csv, &t, err, sizeof err);
    if (rc != ENMS_OK) {
        fprintf(stderr, "enmsctl fit: %s\n", err);
        /* A file we cannot use is bad input: exit 2, like bad options. */
        return rc == ENMS_ENOMEM ? rc : ENMS_EINVAL;
    }
    if (o.model == FIT_ARIMA)
        rc = fit_arima(&o, &t);
    else if (o.model == FIT_BASELINE)
        rc = fit_baseline(&o, &t);
    else
        rc = fit_anomaly(&o, &t);
    table_free(&t);
    /* Too short, singular or otherwise unfittable input is the user's: exit 2. */
    return rc == ENMS_ETOOBIG ? ENMS_EINVAL : rc;
}
