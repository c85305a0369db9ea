/* ab_tests.c - A/B tests of two model versions (see ab_tests.h): the paired
 * judgement of their losses, and the life of a model_ab_tests row from
 * start to decision.
 *
 * Every change to a test happens in one transaction that holds the test's
 * row lock (SELECT ... FOR UPDATE), so a results request, a decision and
 * housekeeping's expiry never judge or complete the same test twice at
 * once. Starting a test takes an advisory lock on (machine, model type)
 * instead, because there is no row yet to lock and no unique index on
 * running tests. */
#include "ab_tests.h"
#include "model_versions.h"
#include "error.h"
#include "pg.h"
#include "stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Timestamps leave PostgreSQL as UTC ISO 8601, like the rest of the API. */
#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

#define FINISH_BATCH 100 /* expired tests completed per housekeeping pass */

/* --- the paired judgement (pure) ---------------------------------------- */

enum ab_kind { KIND_BASELINE, KIND_ANOMALY, KIND_FORECAST };

static int kind_of(const char *model_type, enum ab_kind *kind)
{
    if (strcmp(model_type, "baseline") == 0)
        *kind = KIND_BASELINE;
    else if (strcmp(model_type, "anomaly") == 0)
        *kind = KIND_ANOMALY;
    else if (strcmp(model_type, "forecast_arima") == 0)
        *kind = KIND_FORECAST;
    else
        return ENMS_EINVAL;
    return ENMS_OK;
}

/* cJSON prints NaN as null already; this states the intent. */
static void add_number_or_null(cJSON *obj, const char *name, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(obj, name, v);
    else
        cJSON_AddNullToObject(obj, name);
}

/* The metrics of one version's n losses. The loss already is the error the
 * type is judged by: |error| for baselines, error² for forecasts, 0/1 for
 * anomaly labels; MAE and RMSE are recovered from it. */
static cJSON *version_metrics(enum ab_kind kind, const double *loss, size_t n)
{
    cJSON *m = cJSON_CreateObject();
    double sum = 0, sumsq = 0, sumroot = 0;
    if (!m)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        sum += loss[i];
        sumsq += loss[i] * loss[i];
        sumroot += sqrt(loss[i]);
    }
    double nn = (double)n;
    double mean = n ? sum / nn : NAN;
    cJSON_AddNumberToObject(m, "n", nn);
    add_number_or_null(m, "mean_loss", mean);
    switch (kind) {
    case KIND_BASELINE:
        add_number_or_null(m, "mae", mean);
        add_number_or_null(m, "rmse", n ? sqrt(sumsq / nn) : NAN);
        break;
    case KIND_FORECAST:
        add_number_or_null(m, "mse", mean);
        add_number_or_null(m, "rmse", n ? sqrt(mean) : NAN);
        add_number_or_null(m, "mae", n ? sumroot / nn : NAN);
        break;
    case KIND_ANOMALY:
        add_number_or_null(m, "error_rate", mean);
        add_number_or_null(m, "accuracy", n ? 1.0 - mean : NAN);
        break;
    }
    return m;
}

int ab_judge(const char *model_type, const double *loss_a, const double *loss_b, size_t n,
             double confidence_level, struct ab_verdict *v, cJSON **metrics_a, cJSON **metrics_b,
             char *err, size_t errlen)
{
    enum ab_kind kind;
    struct stats_paired ps;
    char serr[200];
    int a_better = 0, rc;

    memset(v, 0, sizeof *v);
    *metrics_a = *metrics_b = NULL;
    if (kind_of(model_type, &kind) != ENMS_OK)
        return enms_fail(err, errlen, ENMS_EINVAL, "model_type %s has no A/B test", model_type);
    v->n = n;
    v->min_samples = kind == KIND_FORECAST ? AB_MIN_PAIRED_SAMPLES_FORECAST : AB_MIN_PAIRED_SAMPLES;
    v->test = kind == KIND_FORECAST ? "diebold_mariano" : "wilcoxon_signed_rank";
    v->loss = kind == KIND_BASELINE   ? "absolute_error"
              : kind == KIND_FORECAST ? "squared_error"
                                      : "zero_one";
    v->statistic = v->p_value = v->mean_diff = NAN;
    *metrics_a = version_metrics(kind, loss_a, n);
    *metrics_b = version_metrics(kind, loss_b, n);
    if (!*metrics_a || !*metrics_b) {
        cJSON_Delete(*metrics_a);
        cJSON_Delete(*metrics_b);
        *metrics_a = *metrics_b = NULL;
        return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
    }
    if (n == 0) {
        snprintf(v->note, sizeof v->note, "no paired samples yet");
        return ENMS_OK;
    }
    size_t unequal = 0;
    double dsum = 0;
    for (size_t i = 0; i < n; i++) {
        unequal += loss_a[i] != loss_b[i];
        dsum += loss_a[i] - loss_b[i];
    }
    v->mean_diff = dsum / (double)n;
    if (unequal == 0) {
        /* Both tests are undefined here; the answer is certain: no difference. */
        v->has_statistic = 1;
        v->statistic = 0;
        v->p_value = 1;
        snprintf(v->note, sizeof v->note, "the two versions' losses are equal on every sample");
        return ENMS_OK;
    }
    if (kind == KIND_FORECAST) {
        int h = (int)(n / 2);
        h = h < 1 ? 1 : h > AB_DM_HORIZON ? AB_DM_HORIZON : h;
        rc = stats_diebold_mariano(loss_a, loss_b, n, h, &ps, serr, sizeof serr);
        a_better = ps.mean_diff < 0;
    } else {
        rc = stats_wilcoxon_signed_rank(loss_a, loss_b, n, &ps, serr, sizeof serr);
        /* V above its null mean n(n+1)/4: the positive differences (a worse)
         * carry the larger ranks. */
        a_better = ps.statistic < (double)ps.n_used * ((double)ps.n_used + 1) / 4.0;
    }
    if (rc != ENMS_OK) {
        snprintf(v->note, sizeof v->note, "%s could not run: %s", v->test, serr);
        return ENMS_OK;
    }
    if (!isfinite(ps.p_value) || !isfinite(ps.statistic)) {
        snprintf(v->note, sizeof v->note, "%s gave no finite p-value", v->test);
        return ENMS_OK;
    }
    v->has_statistic = 1;
    v->statistic = ps.statistic;
    v->p_value = ps.p_value < 0 ? 0 : ps.p_value > 1 ? 1 : ps.p_value;
    double alpha = 1.0 - confidence_level;
    if (n < v->min_samples)
        snprintf(v->note, sizeof v->note, "%zu paired samples; a winner needs at least %zu", n,
                 v->min_samples);
    else if (!(v->p_value < alpha))
        snprintf(v->note, sizeof v->note, "p-value %.4g is not below %.4g", v->p_value, alpha);
    else
        v->winner = a_better ? 1 : 2;
    return ENMS_OK;
}

/* --- rows ----------------------------------------------------------------- */

/* One model_ab_tests row, pointing into res (valid while res lives). */
struct ab_row {
    PGresult *res;
    const char *id, *test_name, *model_type, *machine_id, *a_id, *b_id, *status;
    const char *test_start, *test_end, *decision, *notes, *decided_by, *decided_at;
    const char *winner_id, *winner_at;
    int a_version, b_version; /* 0 when unknown */
    double split_a, split_b, confidence;
    int expired; /* running and past test_end */
};

enum {
    C_ID,
    C_NAME,
    C_TYPE,
    C_MACHINE,
    C_A_ID,
    C_A_VERSION,
    C_B_ID,
    C_B_VERSION,
    C_START,
    C_END,
    C_STATUS,
    C_SPLIT_A,
    C_SPLIT_B,
    C_CONFIDENCE,
    C_EXPIRED,
    C_DECISION,
    C_NOTES,
    C_DECIDED_BY,
    C_DECIDED_AT,
    C_WINNER,
    C_WINNER_AT,
};

#define ROW_SQL                                                                                    \
    "SELECT id::text, test_name, model_type, machine_id::text, model_a_id::text, "                 \
    "model_a_version, model_b_id::text, model_b_version, " TS("test_start") ", " TS(               \
        "test_end") ", test_status, traffic_split_a, traffic_split_b, confidence_level, "          \
                    "(test_status = 'running' AND test_end <= now()), decision, decision_notes, "  \
                    "decided_by, " TS("decided_at") ", winner_model_id::text, " TS(                \
                        "winner_declared_at") " FROM model_ab_tests WHERE id = $1::uuid "

static const char *cell(const PGresult *res, int col)
{
    return PQgetisnull(res, 0, col) ? NULL : PQgetvalue(res, 0, col);
}

/* Reads test id (locking its row when lock is set). Returns ENMS_OK with
 * row->res to PQclear, ENMS_ENOTFOUND or ENMS_EDB. */
static int row_load(PGconn *conn, const char *id, int lock, struct ab_row *row, char *err,
                    size_t errlen)
{
    const char *p[] = {id};
    memset(row, 0, sizeof *row);
    PGresult *res =
        pg_exec(conn, PGRES_TUPLES_OK, lock ? ROW_SQL "FOR UPDATE" : ROW_SQL, 1, p, err, errlen);
    if (!res)
        return ENMS_EDB;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return enms_fail(err, errlen, ENMS_ENOTFOUND, "A/B test %s not found", id);
    }
    row->res = res;
    row->id = cell(res, C_ID);
    row->test_name = cell(res, C_NAME);
    row->model_type = cell(res, C_TYPE);
    row->machine_id = cell(res, C_MACHINE);
    row->a_id = cell(res, C_A_ID);
    row->b_id = cell(res, C_B_ID);
    row->a_version = cell(res, C_A_VERSION) ? atoi(cell(res, C_A_VERSION)) : 0;
    row->b_version = cell(res, C_B_VERSION) ? atoi(cell(res, C_B_VERSION)) : 0;
    row->test_start = cell(res, C_START);
    row->test_end = cell(res, C_END);
    row->status = cell(res, C_STATUS);
    row->split_a = strtod(PQgetvalue(res, 0, C_SPLIT_A), NULL);
    row->split_b = strtod(PQgetvalue(res, 0, C_SPLIT_B), NULL);
    row->confidence = strtod(PQgetvalue(res, 0, C_CONFIDENCE), NULL);
    row->expired = strcmp(PQgetvalue(res, 0, C_EXPIRED), "t") == 0;
    row->decision = cell(res, C_DECISION);
    row->notes = cell(res, C_NOTES);
    row->decided_by = cell(res, C_DECIDED_BY);
    row->decided_at = cell(res, C_DECIDED_AT);
    row->winner_id = cell(res, C_WINNER);
    row->winner_at = cell(res, C_WINNER_AT);
    return ENMS_OK;
}

/* The paired losses of a test, oldest first: *a and *b are malloc'd arrays
 * of *n values the caller frees (NULL when n is 0). */
static int samples_load(PGconn *conn, const char *id, double **a, double **b, size_t *n, char *err,
                        size_t errlen)
{
    char limit[24];
    snprintf(limit, sizeof limit, "%d", AB_SAMPLES_MAX);
    const char *p[] = {id, limit};
    *a = *b = NULL;
    *n = 0;
    PGresult *res = pg_exec(conn, PGRES_TUPLES_OK,
                            "SELECT loss_a, loss_b FROM model_ab_test_samples "
                            "WHERE test_id = $1::uuid ORDER BY sample_ts LIMIT $2::int",
                            2, p, err, errlen);
    if (!res)
        return ENMS_EDB;
    size_t rows = (size_t)PQntuples(res);
    if (rows > 0) {
        *a = malloc(rows * sizeof **a);
        *b = malloc(rows * sizeof **b);
        if (!*a || !*b) {
            free(*a);
            free(*b);
            *a = *b = NULL;
            PQclear(res);
            return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < rows; i++) {
            (*a)[i] = strtod(PQgetvalue(res, (int)i, 0), NULL);
            (*b)[i] = strtod(PQgetvalue(res, (int)i, 1), NULL);
        }
    }
    *n = rows;
    PQclear(res);
    return ENMS_OK;
}

static void add_text_or_null(cJSON *obj, const char *name, const char *text)
{
    if (text)
        cJSON_AddStringToObject(obj, name, text);
    else
        cJSON_AddNullToObject(obj, name);
}

static void recommend(const struct ab_row *r, const struct ab_verdict *v, char *buf, size_t len)
{
    double alpha = 1.0 - r->confidence;
    if (v->n == 0) {
        snprintf(buf, len,
                 "No paired samples yet: every evaluation during the test scores both versions "
                 "on the same new data (POST /api/v1/evaluate runs one now).");
    } else if (v->winner) {
        int a = v->winner == 1;
        snprintf(buf, len,
                 "Version %d (model_%c) has the lower %s on %zu paired samples (%s p = %.3g < "
                 "%.3g): promote it with decision promote_%c.",
                 a ? r->a_version : r->b_version, a ? 'a' : 'b', v->loss, v->n, v->test, v->p_value,
                 alpha, a ? 'a' : 'b');
    } else if (v->n < v->min_samples) {
        snprintf(buf, len,
                 "Only %zu paired samples; at least %zu are needed before a winner is declared. "
                 "Let the test run longer.",
                 v->n, v->min_samples);
    } else if (v->has_statistic) {
        snprintf(buf, len,
                 "No significant difference between version %d and version %d (%s p = %.3g, "
                 "needed < %.3g): keep the active version, or run the test longer.",
                 r->a_version, r->b_version, v->test, v->p_value, alpha);
    } else {
        snprintf(buf, len, "No winner: %s. Keep the active version.", v->note);
    }
}

/* The results object of a test: the row's facts and the verdict. Takes
 * ownership of ma and mb. NULL when out of memory. */
static cJSON *results_json(const struct ab_row *r, const struct ab_verdict *v, cJSON *ma, cJSON *mb)
{
    char rec[512];
    cJSON *o = cJSON_CreateObject();
    if (!o) {
        cJSON_Delete(ma);
        cJSON_Delete(mb);
        return NULL;
    }
    cJSON_AddStringToObject(o, "test_id", r->id);
    add_text_or_null(o, "test_name", r->test_name);
    cJSON_AddStringToObject(o, "model_type", r->model_type);
    cJSON_AddStringToObject(o, "machine_id", r->machine_id);
    cJSON_AddStringToObject(o, "status", r->status);
    add_text_or_null(o, "test_start", r->test_start);
    add_text_or_null(o, "test_end", r->test_end);
    cJSON_AddStringToObject(o, "model_a_id", r->a_id);
    cJSON_AddStringToObject(o, "model_b_id", r->b_id);
    cJSON_AddNumberToObject(o, "model_a_version", r->a_version);
    cJSON_AddNumberToObject(o, "model_b_version", r->b_version);
    cJSON_AddNumberToObject(o, "traffic_split_a", r->split_a);
    cJSON_AddNumberToObject(o, "traffic_split_b", r->split_b);
    cJSON_AddItemToObject(o, "model_a_metrics", ma);
    cJSON_AddItemToObject(o, "model_b_metrics", mb);
    cJSON_AddNumberToObject(o, "paired_samples", (double)v->n);
    cJSON_AddNumberToObject(o, "min_paired_samples", (double)v->min_samples);
    cJSON_AddStringToObject(o, "loss", v->loss);
    cJSON_AddStringToObject(o, "test", v->test);
    add_number_or_null(o, "statistic", v->has_statistic ? v->statistic : NAN);
    add_number_or_null(o, "p_value", v->has_statistic ? v->p_value : NAN);
    add_number_or_null(o, "mean_loss_difference", v->mean_diff);
    cJSON_AddNumberToObject(o, "confidence_level", r->confidence);
    /* The old field: 1 - p, kept for old clients; decisions use p_value. */
    add_number_or_null(o, "confidence", v->has_statistic ? 1.0 - v->p_value : NAN);
    cJSON_AddStringToObject(o, "winner",
                            v->winner == 1   ? "model_a"
                            : v->winner == 2 ? "model_b"
                                             : "no_winner");
    add_text_or_null(o, "winner_model_id",
                     v->winner == 1   ? r->a_id
                     : v->winner == 2 ? r->b_id
                                      : NULL);
    if (v->winner)
        cJSON_AddNumberToObject(o, "winner_version", v->winner == 1 ? r->a_version : r->b_version);
    else
        cJSON_AddNullToObject(o, "winner_version");
    add_text_or_null(o, "note", v->note[0] ? v->note : NULL);
    recommend(r, v, rec, sizeof rec);
    cJSON_AddStringToObject(o, "recommendation", rec);
    add_text_or_null(o, "decision", r->decision);
    add_text_or_null(o, "decision_notes", r->notes);
    add_text_or_null(o, "decided_by", r->decided_by);
    add_text_or_null(o, "decided_at", r->decided_at);
    add_text_or_null(o, "declared_winner_model_id", r->winner_id);
    add_text_or_null(o, "winner_declared_at", r->winner_at);
    return o;
}

static void rollback(PGconn *conn)
{
    char ignored[128];
    pg_command(conn, "ROLLBACK", ignored, sizeof ignored);
}

static void fmt_double(char *buf, size_t len, double v)
{
    snprintf(buf, len, "%.17g", v);
}

/* --- judging, completing and deciding ------------------------------------ */

enum judge_mode {
    MODE_RESULTS, /* judge; store when running; complete when expired */
    MODE_FINISH,  /* complete when running and expired, else nothing */
    MODE_DECIDE,  /* complete with a decision */
};

struct decide_args {
    const char *decision, *notes, *decided_by;
};

/* Judges test id inside the caller's transaction (see enum judge_mode).
 * *out (may be NULL) receives the results object. */
static int judge(PGconn *conn, const char *id, enum judge_mode mode, const struct decide_args *d,
                 cJSON **out, char *err, size_t errlen)
{
    struct ab_row row = {0};
    struct ab_verdict v;
    double *la = NULL, *lb = NULL;
    size_t n = 0;
    cJSON *ma = NULL, *mb = NULL, *results = NULL;
    char *ma_text = NULL, *mb_text = NULL, *results_text = NULL;
    PGresult *res = NULL;
    int rc;

    if (out)
        *out = NULL;
    if ((rc = row_load(conn, id, 1, &row, err, errlen)) != ENMS_OK)
        goto done;
    int running = strcmp(row.status, "running") == 0;
    int complete = running && row.expired;
    if (mode == MODE_FINISH && !complete)
        goto done; /* decided or judged by someone else since the scan */
    if (mode == MODE_DECIDE) {
        if (row.decision) {
            rc = enms_fail(err, errlen, ENMS_ECONFLICT, "A/B test %s was already decided (%s)", id,
                           row.decision);
            goto done;
        }
        if (!running && strcmp(row.status, "completed") != 0) {
            rc = enms_fail(err, errlen, ENMS_ECONFLICT, "A/B test %s is %s", id, row.status);
            goto done;
        }
        complete = 1;
    }
    if ((rc = samples_load(conn, id, &la, &lb, &n, err, errlen)) != ENMS_OK)
        goto done;
    if ((rc = ab_judge(row.model_type, la, lb, n, row.confidence, &v, &ma, &mb, err, errlen)) !=
        ENMS_OK)
        goto done;

    if (complete) {
        /* Who won: the statistics, unless a person decided otherwise. */
        const char *winner = v.winner == 1 ? row.a_id : v.winner == 2 ? row.b_id : NULL;
        const char *decision = mode == MODE_DECIDE ? d->decision : NULL;
        if (decision && strcmp(decision, "promote_a") == 0)
            winner = row.a_id;
        else if (decision && strcmp(decision, "promote_b") == 0)
            winner = row.b_id;
        else if (decision && strcmp(decision, "no_winner") == 0)
            winner = NULL;
        if (decision && strncmp(decision, "promote_", 8) == 0) {
            char prev[40];
            rc = model_version_activate(conn, winner, prev, sizeof prev, NULL, 0, err, errlen);
            if (rc == ENMS_ENOTFOUND) {
                rc = enms_fail(err, errlen, ENMS_ECONFLICT,
                               "model version %s no longer exists; nothing was changed", winner);
                goto done;
            }
            if (rc != ENMS_OK)
                goto done;
        }
        const char *p[] = {id,
                           winner,
                           decision,
                           decision ? d->notes : NULL,
                           decision ? d->decided_by : NULL,
                           decision ? "t" : "f"};
        /* A decision before the planned end ends the test now. */
        res = pg_exec(conn, PGRES_COMMAND_OK,
                      "UPDATE model_ab_tests SET test_status = 'completed', "
                      "winner_model_id = $2::uuid, "
                      "winner_declared_at = CASE WHEN $2::uuid IS NULL THEN NULL ELSE now() END, "
                      "decision = CASE WHEN $6::bool THEN $3 ELSE decision END, "
                      "decision_notes = CASE WHEN $6::bool THEN $4 ELSE decision_notes END, "
                      "decided_by = CASE WHEN $6::bool THEN $5 ELSE decided_by END, "
                      "decided_at = CASE WHEN $6::bool THEN now() ELSE decided_at END, "
                      "test_end = CASE WHEN $6::bool AND test_end > now() AND now() > test_start "
                      "THEN now() ELSE test_end END "
                      "WHERE id = $1::uuid",
                      6, p, err, errlen);
        if (!res) {
            rc = ENMS_EDB;
            goto done;
        }
        PQclear(res);
        res = NULL;
        PQclear(row.res);
        if ((rc = row_load(conn, id, 0, &row, err, errlen)) != ENMS_OK)
            goto done;
    }

    results = results_json(&row, &v, ma, mb);
    ma = mb = NULL;
    if (!results) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    if (running) {
        char pval[32], count[24];
        const cJSON *ja = cJSON_GetObjectItemCaseSensitive(results, "model_a_metrics");
        const cJSON *jb = cJSON_GetObjectItemCaseSensitive(results, "model_b_metrics");
        ma_text = cJSON_PrintUnformatted(ja);
        mb_text = cJSON_PrintUnformatted(jb);
        results_text = cJSON_PrintUnformatted(results);
        if (!ma_text || !mb_text || !results_text) {
            rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
            goto done;
        }
        fmt_double(pval, sizeof pval, v.p_value);
        snprintf(count, sizeof count, "%zu", v.n);
        const char *p[] = {id,           ma_text, mb_text, v.has_statistic ? pval : NULL,
                           results_text, v.test,  count};
        res = pg_exec(conn, PGRES_COMMAND_OK,
                      "UPDATE model_ab_tests SET model_a_metrics = $2::jsonb, "
                      "model_b_metrics = $3::jsonb, statistical_significance = $4::float8, "
                      "results = $5::jsonb, test_method = $6, paired_samples = $7::int "
                      "WHERE id = $1::uuid",
                      7, p, err, errlen);
        if (!res) {
            rc = ENMS_EDB;
            goto done;
        }
    }
    if (out) {
        *out = results;
        results = NULL;
    }
done:
    PQclear(res);
    PQclear(row.res);
    cJSON_Delete(ma);
    cJSON_Delete(mb);
    cJSON_Delete(results);
    cJSON_free(ma_text);
    cJSON_free(mb_text);
    cJSON_free(results_text);
    free(la);
    free(lb);
    return rc;
}

/* judge() in its own transaction. */
static int judge_tx(PGconn *conn, const char *id, enum judge_mode mode, const struct decide_args *d,
                    cJSON **out, char *err, size_t errlen)
{
    int rc = pg_command(conn, "BEGIN", err, errlen);
    if (rc != ENMS_OK)
        return rc;
    rc = judge(conn, id, mode, d, out, err, errlen);
    if (rc == ENMS_OK)
        rc = pg_command(conn, "COMMIT", err, errlen);
    if (rc != ENMS_OK) {
        rollback(conn);
        if (out) {
            cJSON_Delete(*out);
            *out = NULL;
        }
    }
    return rc;
}

int ab_tests_results(PGconn *conn, const char *test_id, cJSON **out, char *err, size_t errlen)
{
    return judge_tx(conn, test_id, MODE_RESULTS, NULL, out, err, errlen);
}

int ab_tests_decide(PGconn *conn, const char *test_id, const char *decision, const char *notes,
                    const char *decided_by, cJSON **out, char *err, size_t errlen)
{
    static const char *const decisions[] = {"promote_a", "promote_b", "no_winner", "manual_review"};
    size_t i = 0;
    for (; i < sizeof decisions / sizeof decisions[0]; i++) {
        if (strcmp(decision, decisions[i]) == 0)
            break;
    }
    if (i == sizeof decisions / sizeof decisions[0])
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "decision: must be one of promote_a, promote_b, no_winner, "
                         "manual_review");
    struct decide_args d = {decision, notes, decided_by};
    return judge_tx(conn, test_id, MODE_DECIDE, &d, out, err, errlen);
}

int ab_tests_finish_expired(PGconn *conn, char *err, size_t errlen)
{
    char limit[16];
    snprintf(limit, sizeof limit, "%d", FINISH_BATCH);
    const char *p[] = {limit};
    PGresult *res = pg_exec(conn, PGRES_TUPLES_OK,
                            "SELECT id::text FROM model_ab_tests WHERE test_status = 'running' "
                            "AND test_end <= now() ORDER BY test_end LIMIT $1::int",
                            1, p, err, errlen);
    int rc = ENMS_OK;
    if (!res)
        return ENMS_EDB;
    for (int i = 0; i < PQntuples(res) && rc == ENMS_OK; i++) {
        rc = judge_tx(conn, PQgetvalue(res, i, 0), MODE_FINISH, NULL, NULL, err, errlen);
        if (rc == ENMS_ENOTFOUND) /* deleted (its machine with it) since the scan */
            rc = ENMS_OK;
    }
    PQclear(res);
    return rc;
}

/* --- starting ------------------------------------------------------------- */

/* Checks that version id (field names it in messages) exists and belongs to
 * the machine and type; *version receives its number. */
static int check_version(PGconn *conn, const char *field, const char *id, const char *machine_id,
                         const char *model_type, int *version, char *err, size_t errlen)
{
    const char *p[] = {id};
    PGresult *res = pg_exec(conn, PGRES_TUPLES_OK,
                            "SELECT machine_id::text, model_type, version FROM model_versions "
                            "WHERE id = $1::uuid",
                            1, p, err, errlen);
    int rc = ENMS_OK;
    if (!res)
        return ENMS_EDB;
    if (PQntuples(res) == 0)
        rc = enms_fail(err, errlen, ENMS_ENOTFOUND, "%s: model version %s not found", field, id);
    else if (strcmp(PQgetvalue(res, 0, 0), machine_id) != 0)
        rc = enms_fail(err, errlen, ENMS_EINVAL,
                       "%s: model version %s belongs to machine %s, not %s", field, id,
                       PQgetvalue(res, 0, 0), machine_id);
    else if (strcmp(PQgetvalue(res, 0, 1), model_type) != 0)
        rc = enms_fail(err, errlen, ENMS_EINVAL, "%s: model version %s is a %s model, not %s",
                       field, id, PQgetvalue(res, 0, 1), model_type);
    else
        *version = atoi(PQgetvalue(res, 0, 2));
    PQclear(res);
    return rc;
}

static int check_input(const struct ab_start_input *in, char *err, size_t errlen)
{
    enum ab_kind kind;
    if (kind_of(in->model_type, &kind) != ENMS_OK)
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "model_type: must be baseline, anomaly or forecast_arima");
    if (!(in->duration_hours >= AB_DURATION_MIN_H && in->duration_hours <= AB_DURATION_MAX_H))
        return enms_fail(err, errlen, ENMS_EINVAL, "duration_hours: must be a number from %g to %d",
                         AB_DURATION_MIN_H, AB_DURATION_MAX_H);
    if (!(in->traffic_split_a > 0 && in->traffic_split_a < 1))
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "traffic_split: must be a number between 0 and 1 (exclusive)");
    if (!(in->confidence_level >= AB_CONFIDENCE_MIN && in->confidence_level <= AB_CONFIDENCE_MAX))
        return enms_fail(err, errlen, ENMS_EINVAL, "confidence_level: must be from %g to %g",
                         AB_CONFIDENCE_MIN, AB_CONFIDENCE_MAX);
    if (strcmp(in->model_a_id, in->model_b_id) == 0)
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "model_b_id: must differ from model_a_id (a test compares two versions)");
    return ENMS_OK;
}

int ab_tests_start(PGconn *conn, const struct ab_start_input *in, cJSON **out, char *existing_id,
                   char *err, size_t errlen)
{
    PGresult *res = NULL;
    cJSON *o = NULL;
    int rc, in_tx = 0, va = 0, vb = 0;
    char dur[32], split[32], conf[32];

    *out = NULL;
    existing_id[0] = '\0';
    if ((rc = check_input(in, err, errlen)) != ENMS_OK)
        return rc;
    /* A test whose time is up no longer blocks a new one. */
    if ((rc = ab_tests_finish_expired(conn, err, errlen)) != ENMS_OK)
        return rc;
    if ((rc = pg_command(conn, "BEGIN", err, errlen)) != ENMS_OK)
        return rc;
    in_tx = 1;
    const char *key[] = {in->machine_id, in->model_type};
    res = pg_exec(conn, PGRES_TUPLES_OK,
                  "SELECT pg_advisory_xact_lock(hashtextextended('ab_tests:' || $1 || ':' || $2, "
                  "0)), EXISTS (SELECT 1 FROM machines WHERE id = $1::uuid)",
                  2, key, err, errlen);
    if (!res) {
        rc = ENMS_EDB;
        goto done;
    }
    if (strcmp(PQgetvalue(res, 0, 1), "t") != 0) {
        rc = enms_fail(err, errlen, ENMS_ENOTFOUND, "machine_id: machine %s not found",
                       in->machine_id);
        goto done;
    }
    PQclear(res);
    res = NULL;
    if ((rc = check_version(conn, "model_a_id", in->model_a_id, in->machine_id, in->model_type, &va,
                            err, errlen)) != ENMS_OK ||
        (rc = check_version(conn, "model_b_id", in->model_b_id, in->machine_id, in->model_type, &vb,
                            err, errlen)) != ENMS_OK)
        goto done;
    res = pg_exec(conn, PGRES_TUPLES_OK,
                  "SELECT id::text FROM model_ab_tests WHERE machine_id = $1::uuid "
                  "AND model_type = $2 AND test_status = 'running' ORDER BY test_start LIMIT 1",
                  2, key, err, errlen);
    if (!res) {
        rc = ENMS_EDB;
        goto done;
    }
    if (PQntuples(res) > 0) {
        snprintf(existing_id, 37, "%s", PQgetvalue(res, 0, 0));
        rc = enms_fail(err, errlen, ENMS_ECONFLICT,
                       "an A/B test of this machine and model type is already running (%s)",
                       existing_id);
        goto done;
    }
    PQclear(res);
    fmt_double(dur, sizeof dur, in->duration_hours);
    fmt_double(split, sizeof split, in->traffic_split_a);
    fmt_double(conf, sizeof conf, in->confidence_level);
    char vat[16], vbt[16];
    snprintf(vat, sizeof vat, "%d", va);
    snprintf(vbt, sizeof vbt, "%d", vb);
    const char *p[] = {in->test_name,
                       in->model_type,
                       in->machine_id,
                       in->model_a_id,
                       vat,
                       in->model_b_id,
                       vbt,
                       dur,
                       split,
                       conf};
    res = pg_exec(conn, PGRES_TUPLES_OK,
                  "INSERT INTO model_ab_tests (test_name, model_type, machine_id, model_a_id, "
                  "model_a_version, model_b_id, model_b_version, test_start, test_end, "
                  "test_status, traffic_split_a, traffic_split_b, confidence_level) "
                  "VALUES ($1, $2, $3::uuid, $4::uuid, $5::int, $6::uuid, $7::int, now(), "
                  "now() + make_interval(secs => $8::float8 * 3600), 'running', $9::float8, "
                  "1 - $9::float8, $10::float8) "
                  "RETURNING id::text, " TS("test_start") ", " TS("test_end") ", traffic_split_b",
                  10, p, err, errlen);
    if (!res) {
        rc = ENMS_EDB;
        goto done;
    }
    if ((rc = pg_command(conn, "COMMIT", err, errlen)) != ENMS_OK)
        goto done;
    in_tx = 0;
    o = cJSON_CreateObject();
    if (!o) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    cJSON_AddStringToObject(o, "test_id", PQgetvalue(res, 0, 0));
    cJSON_AddStringToObject(o, "test_name", in->test_name);
    cJSON_AddStringToObject(o, "status", "running");
    cJSON_AddStringToObject(o, "model_type", in->model_type);
    cJSON_AddStringToObject(o, "machine_id", in->machine_id);
    cJSON_AddStringToObject(o, "model_a_id", in->model_a_id);
    cJSON_AddNumberToObject(o, "model_a_version", va);
    cJSON_AddStringToObject(o, "model_b_id", in->model_b_id);
    cJSON_AddNumberToObject(o, "model_b_version", vb);
    cJSON_AddNumberToObject(o, "traffic_split_a", in->traffic_split_a);
    cJSON_AddNumberToObject(o, "traffic_split_b", strtod(PQgetvalue(res, 0, 3), NULL));
    cJSON_AddNumberToObject(o, "confidence_level", in->confidence_level);
    cJSON_AddNumberToObject(o, "duration_hours", in->duration_hours);
    cJSON_AddStringToObject(o, "test_start", PQgetvalue(res, 0, 1));
    cJSON_AddStringToObject(o, "test_end", PQgetvalue(res, 0, 2));
    char msg[256];
    snprintf(msg, sizeof msg,
             "A/B test started: every evaluation until %s scores version %d and version %d on "
             "the same new data.",
             PQgetvalue(res, 0, 2), va, vb);
    cJSON_AddStringToObject(o, "message", msg);
    *out = o;
done:
    PQclear(res);
    if (in_tx)
        rollback(conn);
    return rc;
}
