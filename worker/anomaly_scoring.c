/* anomaly_scoring.c - score jobs (anomaly_scoring.h): the active anomaly
 * model over the readings after anomaly_scoring_state.scored_until, the
 * flagged hours with what stood out in them, and their storing and alert.
 *
 * The detectors themselves are worker/models/anomaly.c's; this file picks
 * the hours, explains the flags and writes the rows. */
#include "anomaly_scoring.h"
#include "evaluation.h"
#include "readings_load.h"
#include "models/anomaly.h"
#include "../common/alerts.h"
#include "../common/error.h"
#include "../common/pg.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOUR_S 3600

static int add_num(cJSON *o, const char *key, double v)
{
    return (isfinite(v) ? cJSON_AddNumberToObject(o, key, v) : cJSON_AddNullToObject(o, key)) ? 0
                                                                                              : -1;
}

static int add_name(cJSON *arr, const char *name)
{
    cJSON *s = cJSON_CreateString(name);
    if (!s || !cJSON_AddItemToArray(arr, s)) {
        cJSON_Delete(s);
        return -1;
    }
    return 0;
}

static void iso_time(time_t t, char *buf, size_t len)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Expected energy of every hour of s under m (as the detectors use it). */
static int expected_of(const struct anomaly_model *m, const struct series *s, double *e, char *err,
                       size_t errlen)
{
    if (m->expected == ANOMALY_EXPECTED_BASELINE)
        return baseline_predict_hours(&m->baseline, s, e, err, errlen);
    for (size_t i = 0; i < s->n; i++)
        e[i] = m->profile[series_local_weekday(s->ts[i], m->utc_offset_s) * 24 +
                          series_local_hour(s->ts[i], m->utc_offset_s)];
    return ENMS_OK;
}

/* The features object of flagged hour i: the values, the deviation from
 * the expected energy, both detectors' scores and which features stood
 * out (energy far from expected, a flat meter, a level shift). NULL when
 * out of memory. */
static cJSON *features_of(const struct anomaly_model *m, const struct series *s, size_t i,
                          const double *e, const struct anomaly_flags *flags)
{
    cJSON *o = cJSON_CreateObject(), *by = NULL, *out = NULL;
    if (!o)
        return NULL;
    double energy = s->energy[i], exp = e[i];
    double z = isfinite(energy) && isfinite(exp) && m->residual_scale > 0
                   ? (energy - exp - m->residual_median) / m->residual_scale
                   : NAN;
    int flat = i > 0 && isfinite(energy) && energy == s->energy[i - 1];
    int res_flag = flags[ANOMALY_RESIDUAL].severity[i] != ANOMALY_NONE;
    int if_flag = flags[ANOMALY_IFOREST].severity[i] != ANOMALY_NONE;
    if (add_num(o, "energy_kwh", energy) || add_num(o, "expected_kwh", exp) ||
        add_num(o, "deviation_kwh", energy - exp) ||
        add_num(o, "deviation_pct",
                isfinite(exp) && fabs(exp) > 1e-9 ? (energy - exp) / exp * 100 : NAN) ||
        add_num(o, "residual_z", z) ||
        add_num(o, "residual_score", flags[ANOMALY_RESIDUAL].score[i]) ||
        add_num(o, "forest_score", flags[ANOMALY_IFOREST].score[i]) ||
        add_num(o, "production_count", s->production ? s->production[i] : NAN) ||
        add_num(o, "outdoor_temp_c", s->temp_c ? s->temp_c[i] : NAN) ||
        add_num(o, "local_hour", series_local_hour(s->ts[i], m->utc_offset_s)) ||
        !(by = cJSON_AddArrayToObject(o, "flagged_by")) ||
        !(out = cJSON_AddArrayToObject(o, "stood_out")) ||
        (if_flag && add_name(by, "isolation_forest")) || (res_flag && add_name(by, "residual")) ||
        (isfinite(z) && fabs(z) >= m->z_warning && add_name(out, "energy_kwh")) ||
        (res_flag && flat && !(fabs(z) >= m->z_warning) && add_name(out, "stuck_meter")) ||
        (res_flag && !flat && !(fabs(z) >= m->z_warning) && add_name(out, "level_shift")) ||
        (if_flag && !res_flag && add_name(out, "feature_combination"))) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* anomaly_scoring_state.scored_until of the machine, or 0. */
static int scored_until(PGconn *pg, const char *machine_id, time_t *out, char *err, size_t errlen)
{
    const char *params[] = {machine_id};
    PGresult *res = pg_exec(pg, PGRES_TUPLES_OK,
                            "SELECT extract(epoch FROM scored_until)::bigint "
                            "FROM anomaly_scoring_state WHERE machine_id = $1::uuid",
                            1, params, err, errlen);
    if (!res)
        return ENMS_EDB;
    *out = PQntuples(res) == 1 ? (time_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    return ENMS_OK;
}

static int hook_stop(void *opaque)
{
    struct train_ctx *ctx = opaque;
    return ctx->should_stop && ctx->should_stop(ctx->opaque);
}

int anomaly_scoring_run(const struct job_record *job, struct train_ctx *ctx,
                        struct train_result *out, char *err, size_t errlen)
{
    struct eval_version v;
    struct anomaly_model m;
    struct anomaly_flags flags[ANOMALY_DETECTORS];
    struct readings r;
    struct series s;
    struct series_report rep;
    struct model_hooks hooks = {.should_stop = hook_stop, .opaque = ctx};
    double *e = NULL;
    cJSON *doc = NULL, *result = NULL, *list, *sc;
    time_t from = 0, end = 0;
    int rc, have_model = 0;

    train_result_init(out);
    memset(flags, 0, sizeof flags);
    memset(&r, 0, sizeof r);
    memset(&m, 0, sizeof m);
    if (strcmp(job->model_type, "anomaly") != 0)
        return enms_fail(err, errlen, ENMS_EINVAL, "score jobs need model_type anomaly");
    rc = eval_version_load(ctx->pg, job->machine_id, "anomaly", NULL, &v, err, errlen);
    if (rc != ENMS_OK)
        return rc == ENMS_ENOTFOUND ? ENMS_EINVAL : rc;
    if ((rc = anomaly_model_from_json(v.artifact, &m, err, errlen)) != ENMS_OK)
        goto done;
    have_model = 1;
    if ((rc = scored_until(ctx->pg, job->machine_id, &from, err, errlen)) != ENMS_OK ||
        (rc = eval_readings_end(ctx->pg, job->machine_id, &end, err, errlen)) != ENMS_OK)
        goto done;
    if (!from)
        from = v.trained_until;
    if (!from && end) { /* readings, but no point to start from */
        rc = enms_fail(err, errlen, ENMS_EINVAL, "anomaly version %s has no training end", v.id);
        goto done;
    }
    if (from % HOUR_S)
        from += HOUR_S - from % HOUR_S;
    if (end > from + (time_t)SCORING_MAX_HOURS * HOUR_S)
        end = from + (time_t)SCORING_MAX_HOURS * HOUR_S;
    if (!(result = cJSON_CreateObject()) ||
        !cJSON_AddStringToObject(result, "model_version_id", v.id) ||
        !cJSON_AddNumberToObject(result, "model_version", v.version)) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    char a[32], b[32];
    iso_time(from, a, sizeof a);
    iso_time(end > from ? end : from, b, sizeof b);
    if (!cJSON_AddStringToObject(result, "window_start", a) ||
        !cJSON_AddStringToObject(result, "window_end", b)) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    if (end <= from) {
        if (!cJSON_AddStringToObject(result, "result", "no new readings") ||
            !(out->metrics_json = cJSON_PrintUnformatted(result)))
            rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    if (ctx->progress)
        ctx->progress(ctx->opaque, 10, "loading readings");
    size_t hours = (size_t)((end - from) / HOUR_S);
    if ((rc = readings_load(ctx->pg, job->machine_id, from, end, hours * 4 + 64, NULL, &r, err,
                            errlen)) != ENMS_OK)
        goto done;
    readings_as_series(&r, m.utc_offset_s, &s);
    if ((rc = series_check(&s, &rep, err, errlen)) != ENMS_OK)
        goto done;
    size_t n1 = s.n ? s.n : 1;
    e = malloc(n1 * sizeof *e);
    for (int d = 0; d < ANOMALY_DETECTORS; d++) {
        flags[d].score = malloc(n1 * sizeof *flags[d].score);
        flags[d].severity = malloc(n1);
    }
    if (!e || !flags[0].score || !flags[0].severity || !flags[1].score || !flags[1].severity) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory scoring");
        goto done;
    }
    if (ctx->progress)
        ctx->progress(ctx->opaque, 30, "scoring");
    if ((rc = anomaly_detect(&m, &s, NULL, &hooks, flags, err, errlen)) != ENMS_OK ||
        (rc = expected_of(&m, &s, e, err, errlen)) != ENMS_OK)
        goto done;

    const struct anomaly_flags *f = &flags[m.default_detector];
    const char *detector = m.default_detector == ANOMALY_IFOREST ? "isolation_forest" : "residual";
    size_t flagged = 0, critical = 0;
    double max_score = NAN;
    time_t first_critical = 0;
    if (!(doc = cJSON_CreateObject()) || !(list = cJSON_AddArrayToObject(doc, "anomalies"))) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < s.n; i++) {
        if (f->severity[i] == ANOMALY_NONE || !isfinite(s.energy[i]))
            continue;
        if (i > 0 && s.ts[i] - s.ts[i] % HOUR_S == s.ts[i - 1] - s.ts[i - 1] % HOUR_S)
            continue; /* a duplicate reading of an hour already seen */
        double score = isfinite(f->score[i]) ? f->score[i] : 0;
        int crit = f->severity[i] == ANOMALY_CRITICAL;
        cJSON *row = cJSON_CreateObject(), *feat = NULL;
        if (!row || add_num(row, "ts", (double)(s.ts[i] - s.ts[i] % HOUR_S)) ||
            add_num(row, "score", score) ||
            !cJSON_AddStringToObject(row, "severity", crit ? "critical" : "warning") ||
            !cJSON_AddStringToObject(row, "detector", detector) ||
            add_num(row, "energy", s.energy[i]) || add_num(row, "expected", e[i]) ||
            !(feat = features_of(&m, &s, i, e, flags)) ||
            !cJSON_AddItemToObject(row, "features", feat) || !cJSON_AddItemToArray(list, row)) {
            if (row && feat && !cJSON_GetObjectItem(row, "features"))
                cJSON_Delete(feat);
            cJSON_Delete(row);
            rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
            goto done;
        }
        flagged++;
        if (crit) {
            critical++;
            if (!first_critical)
                first_critical = s.ts[i] - s.ts[i] % HOUR_S;
        }
        if (!(score <= max_score))
            max_score = score;
    }
    if (!(sc = cJSON_AddObjectToObject(doc, "scoring")) ||
        !cJSON_AddStringToObject(sc, "machine_id", job->machine_id) ||
        !cJSON_AddStringToObject(sc, "model_version_id", v.id) ||
        add_num(sc, "model_version", v.version) || add_num(sc, "from", (double)from) ||
        add_num(sc, "scored_until", (double)end) || add_num(sc, "critical", (double)critical) ||
        add_num(sc, "max_score", max_score) ||
        add_num(sc, "first_critical", first_critical ? (double)first_critical : NAN) ||
        !cJSON_AddStringToObject(result, "result", "scored") ||
        add_num(result, "hours_scored", (double)rep.hours_present) ||
        add_num(result, "anomalies", (double)flagged) ||
        add_num(result, "critical", (double)critical) ||
        !cJSON_AddStringToObject(result, "detector", detector) ||
        !(out->metrics_json = cJSON_PrintUnformatted(result)) ||
        !(out->store_json = cJSON_PrintUnformatted(doc))) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    out->eval_start = from;
    out->eval_end = end;
    out->eval_samples = (int)rep.hours_present;
    if (ctx->progress)
        ctx->progress(ctx->opaque, 100, "scored");
done:
    if (rc != ENMS_OK)
        train_result_clear(out);
    for (int d = 0; d < ANOMALY_DETECTORS; d++) {
        free(flags[d].score);
        free(flags[d].severity);
    }
    free(e);
    cJSON_Delete(doc);
    cJSON_Delete(result);
    readings_free(&r);
    if (have_model)
        anomaly_model_free(&m);
    eval_version_free(&v);
    return rc;
}

int anomaly_scoring_store(PGconn *pg, const struct job_record *job, const struct train_result *res,
                          char *err, size_t errlen)
{
    cJSON *doc = NULL;
    char *list = NULL, until[24], version[16];
    int rc = ENMS_OK;
    if (!res->store_json)
        return ENMS_OK;
    if (!(doc = cJSON_Parse(res->store_json)))
        return enms_fail(err, errlen, ENMS_EINVAL, "scoring result is not JSON");
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(doc, "scoring");
    const cJSON *vid = cJSON_GetObjectItemCaseSensitive(sc, "model_version_id");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(sc, "model_version");
    const cJSON *su = cJSON_GetObjectItemCaseSensitive(sc, "scored_until");
    const cJSON *anomalies = cJSON_GetObjectItemCaseSensitive(doc, "anomalies");
    if (!cJSON_IsString(vid) || !cJSON_IsNumber(ver) || !cJSON_IsNumber(su) ||
        !cJSON_IsArray(anomalies)) {
        rc = enms_fail(err, errlen, ENMS_EINVAL, "scoring result is malformed");
        goto done;
    }
    snprintf(until, sizeof until, "%lld", (long long)su->valuedouble);
    snprintf(version, sizeof version, "%d", ver->valueint);
    if (cJSON_GetArraySize(anomalies) > 0) {
        if (!(list = cJSON_PrintUnformatted(anomalies))) {
            rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
            goto done;
        }
        const char *params[] = {job->machine_id, list, vid->valuestring, version};
        /* A later scoring (a newer version) updates the row; the user's
         * label stays. A version deleted meanwhile is stored as NULL. */
        PGresult *q = pg_exec(
            pg, PGRES_COMMAND_OK,
            "INSERT INTO anomalies (machine_id, ts, score, severity, detector, energy_kwh, "
            "expected_kwh, features, model_version_id, model_version) "
            "SELECT $1::uuid, to_timestamp(x.ts), x.score, x.severity, x.detector, x.energy, "
            "x.expected, COALESCE(x.features, '{}'), "
            "(SELECT id FROM model_versions WHERE id = $3::uuid), $4::int "
            "FROM jsonb_to_recordset($2::jsonb) AS x(ts bigint, score float8, severity text, "
            "detector text, energy float8, expected float8, features jsonb) "
            "ON CONFLICT (machine_id, ts) DO UPDATE SET score = EXCLUDED.score, "
            "severity = EXCLUDED.severity, detector = EXCLUDED.detector, "
            "energy_kwh = EXCLUDED.energy_kwh, expected_kwh = EXCLUDED.expected_kwh, "
            "features = EXCLUDED.features, model_version_id = EXCLUDED.model_version_id, "
            "model_version = EXCLUDED.model_version, updated_at = now()",
            4, params, err, errlen);
        if (!q) {
            rc = ENMS_EDB;
            goto done;
        }
        PQclear(q);
    }
    const char *sparams[] = {job->machine_id, until, vid->valuestring};
    PGresult *q =
        pg_exec(pg, PGRES_COMMAND_OK,
                "INSERT INTO anomaly_scoring_state (machine_id, scored_until, model_version_id) "
                "VALUES ($1::uuid, to_timestamp($2::bigint), "
                "(SELECT id FROM model_versions WHERE id = $3::uuid)) "
                "ON CONFLICT (machine_id) DO UPDATE SET scored_until = "
                "GREATEST(anomaly_scoring_state.scored_until, EXCLUDED.scored_until), "
                "model_version_id = EXCLUDED.model_version_id, updated_at = now()",
                3, sparams, err, errlen);
    if (!q) {
        rc = ENMS_EDB;
        goto done;
    }
    PQclear(q);
done:
    cJSON_free(list);
    cJSON_Delete(doc);
    return rc;
}

int anomaly_scoring_alert(PGconn *pg, const struct job_record *job, const struct train_result *res,
                          char *alert_id, char *err, size_t errlen)
{
    cJSON *doc = NULL, *details = NULL;
    int rc = ENMS_OK;
    alert_id[0] = '\0';
    if (!res->store_json || !(doc = cJSON_Parse(res->store_json)))
        return ENMS_OK;
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(doc, "scoring");
    const cJSON *crit = cJSON_GetObjectItemCaseSensitive(sc, "critical");
    const cJSON *vid = cJSON_GetObjectItemCaseSensitive(sc, "model_version_id");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(sc, "model_version");
    const cJSON *maxs = cJSON_GetObjectItemCaseSensitive(sc, "max_score");
    const cJSON *first = cJSON_GetObjectItemCaseSensitive(sc, "first_critical");
    const cJSON *from = cJSON_GetObjectItemCaseSensitive(sc, "from");
    const cJSON *until = cJSON_GetObjectItemCaseSensitive(sc, "scored_until");
    if (!cJSON_IsNumber(crit) || crit->valuedouble < 1 || !cJSON_IsString(vid))
        goto done;
    char f[32] = "", a[32] = "", b[32] = "", msg[400];
    if (cJSON_IsNumber(first))
        iso_time((time_t)first->valuedouble, f, sizeof f);
    if (cJSON_IsNumber(from))
        iso_time((time_t)from->valuedouble, a, sizeof a);
    if (cJSON_IsNumber(until))
        iso_time((time_t)until->valuedouble, b, sizeof b);
    snprintf(msg, sizeof msg, "%d critical anomal%s detected between %s and %s (first at %s)",
             crit->valueint, crit->valueint == 1 ? "y" : "ies", a, b, f);
    if (!(details = cJSON_CreateObject()) ||
        add_num(details, "critical_hours", crit->valuedouble) ||
        !cJSON_AddStringToObject(details, "first_critical", f) ||
        !cJSON_AddStringToObject(details, "window_start", a) ||
        !cJSON_AddStringToObject(details, "window_end", b) ||
        !cJSON_AddStringToObject(details, "job_id", job->id)) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    struct alert_input in = {.alert_type = "anomaly_detected",
                             .severity = "critical",
                             .machine_id = job->machine_id,
                             .model_type = "anomaly",
                             .model_id = vid->valuestring,
                             .model_version = cJSON_IsNumber(ver) ? ver->valueint : 0,
                             .message = msg,
                             .details = details,
                             .current_value = cJSON_IsNumber(maxs) ? maxs->valuedouble : NAN,
                             .threshold_value = NAN,
                             .baseline_value = NAN};
    rc = alert_raise(pg, &in, alert_id, err, errlen);
done:
    cJSON_Delete(details);
    cJSON_Delete(doc);
    return rc;
}
