/* test_anomaly.c - unit tests of the anomaly detectors (worker/models/
 * anomaly.c, iforest.c) and their JSON artifact (model_json.c).
 *
 * The acceptance test scores both detectors on the demo generator's
 * labelled anomalies (ctl/demo_data.c, seed 42, all 8 machines, the year
 * 2025) hour by hour; smaller tests pin the forest's arithmetic and each
 * residual rule on hand-made data. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/error.h"
#include "../../common/rng.h"
#include "../../ctl/demo_data.h"
#include "../../worker/models/anomaly.h"
#include "../../worker/models/iforest.h"

#define END_2026 ((time_t)1767225600) /* 2026-01-01T00:00:00Z */
#define YEAR_H   ((size_t)8760)

/* ---- the forest ----------------------------------------------------------- */

Test(iforest, c_normalisation)
{
    cr_expect_eq(iforest_c(1), 0.0);
    cr_expect_eq(iforest_c(2), 1.0);
    /* 2 (ln 255 + 0.5772156649) - 2 * 255 / 256, by hand. */
    cr_expect(fabs(iforest_c(256) - 10.244770920) < 1e-8, "c(256) = %.10f", iforest_c(256));
    cr_expect(fabs(iforest_c(3) - (2 * (log(2) + 0.5772156649015329) - 4.0 / 3)) < 1e-12);
}

Test(iforest, obvious_outlier_scores_highest)
{
    /* A 7 x 7 grid around the origin and one point far away. */
    double x[50 * 2];
    size_t n = 0;
    for (int i = 0; i < 7; i++)
        for (int j = 0; j < 7; j++, n++) {
            x[n * 2] = i * 0.1;
            x[n * 2 + 1] = j * 0.1;
        }
    x[n * 2] = 5.0;
    x[n * 2 + 1] = 5.0;
    n++;
    struct iforest f;
    char err[128];
    cr_assert_eq(iforest_build(x, n, 2, 100, 256, 42, NULL, 0, 1, &f, err, sizeof err), 0, "%s",
                 err);
    cr_expect_eq(f.subsample, 50, "psi is capped at the rows available");
    cr_expect_eq(f.max_depth, 6, "ceil(log2 50)");
    double outlier = iforest_score(&f, x + (n - 1) * 2), worst_inlier = 0;
    for (size_t i = 0; i + 1 < n; i++)
        worst_inlier = fmax(worst_inlier, iforest_score(&f, x + i * 2));
    cr_expect_gt(outlier, worst_inlier, "outlier %.3f vs inlier %.3f", outlier, worst_inlier);
    cr_expect_gt(outlier, 0.7, "outlier score %.3f", outlier);
    cr_expect_lt(iforest_score(&f, x + 24 * 2), 0.5, "centre of the grid");

    /* Deterministic: the same seed builds the same trees. */
    struct iforest g;
    cr_assert_eq(iforest_build(x, n, 2, 100, 256, 42, NULL, 0, 1, &g, err, sizeof err), 0);
    cr_expect_eq(f.offset[100], g.offset[100]);
    cr_expect_eq(memcmp(f.nodes, g.nodes, f.offset[100] * sizeof *f.nodes), 0);
    iforest_free(&g);
    cr_assert_eq(iforest_build(x, n, 2, 100, 256, 43, NULL, 0, 1, &g, err, sizeof err), 0);
    cr_expect(g.offset[100] != f.offset[100] ||
                  memcmp(f.nodes, g.nodes, f.offset[100] * sizeof *f.nodes) != 0,
              "another seed, other trees");
    iforest_free(&g);
    iforest_free(&f);
}

Test(iforest, rng_is_deterministic_and_uniform)
{
    struct rng a, b;
    rng_seed(&a, 7);
    rng_seed(&b, 7);
    double mean = 0;
    for (int i = 0; i < 10000; i++) {
        cr_assert_eq(rng_next(&a), rng_next(&b));
        double u = rng_uniform(&a);
        rng_uniform(&b);
        cr_assert(u >= 0 && u < 1);
        mean += u / 10000;
    }
    cr_expect(fabs(mean - 0.5) < 0.01, "mean %.4f", mean);
}

/* ---- residual rules on hand-made data ------------------------------------- */

/* Four weeks of a clean daily shape (10 kWh at night, 30 by day) with small
 * deterministic noise, no drivers: the expected value is the hour-of-week
 * profile. */
struct toy {
    time_t ts[24 * 28];
    double e[24 * 28];
    struct series s;
};

static void toy_init(struct toy *t)
{
    struct rng rng;
    rng_seed(&rng, 1);
    for (size_t i = 0; i < 24 * 28; i++) {
        int h = (int)(i % 24);
        t->ts[i] = END_2026 + (time_t)i * 3600;
        t->e[i] = (h >= 7 && h < 19 ? 30.0 : 10.0) + (rng_uniform(&rng) - 0.5);
    }
    t->s = (struct series){.n = 24 * 28, .ts = t->ts, .energy = t->e};
}

Test(anomaly_rules, spike_stuck_meter_and_level_shift)
{
    struct toy t;
    toy_init(&t);
    t.e[100] *= 3;                  /* a spike */
    for (int i = 300; i < 308; i++) /* 8 equal readings: the last good one + 7 repeats */
        t.e[i] = t.e[299];
    for (int i = 500; i < 530; i++) /* a shift of +1 kWh, about 3.5 noise sd */
        t.e[i] += 1.0;
    unsigned char labels[24 * 28] = {0};
    labels[100] = 1;
    for (int i = 300; i < 308; i++)
        labels[i] = 1;
    struct anomaly_config cfg;
    anomaly_config_default(&cfg);
    struct anomaly_result r;
    char err[256] = "";
    cr_assert_eq(anomaly_fit(&t.s, NULL, labels, &cfg, NULL, &r, err, sizeof err), 0, "%s", err);
    cr_expect_eq(r.model.expected, ANOMALY_EXPECTED_PROFILE, "no drivers: profile");
    const struct anomaly_flags *f = &r.flags[ANOMALY_RESIDUAL];
    cr_expect_eq(f->severity[100], ANOMALY_CRITICAL, "spike z %.1f", f->score[100]);
    cr_expect_eq(f->severity[299], ANOMALY_NONE, "the last good reading is not stuck");
    for (int i = 300; i < 308; i++)
        cr_expect_neq(f->severity[i], ANOMALY_NONE, "stuck hour %d", i);
    int shift = 0;
    for (int i = 500; i < 530; i++)
        shift += f->severity[i] != ANOMALY_NONE;
    cr_expect_gt(shift, 15, "CUSUM flags the shift: %d of 30 hours", shift);
    /* The evaluation counts hours. */
    cr_expect_eq(r.eval[ANOMALY_RESIDUAL].hours, 24 * 28);
    cr_expect_gt(r.eval[ANOMALY_RESIDUAL].tp, 8);
    cr_expect(isfinite(r.eval[ANOMALY_IFOREST].f1));
    /* The forest flags its contamination share of the training hours. */
    cr_expect(fabs(r.eval[ANOMALY_IFOREST].rate - 0.01) < 0.005, "forest rate %.4f",
              r.eval[ANOMALY_IFOREST].rate);
    anomaly_result_free(&r);

    /* A machine that stands still (0 kWh) for hours is not a stuck meter. */
    toy_init(&t);
    for (int i = 300; i < 320; i++)
        t.e[i] = 0.0;
    cr_assert_eq(anomaly_fit(&t.s, NULL, NULL, &cfg, NULL, &r, err, sizeof err), 0, "%s", err);
    cr_expect(isnan(r.eval[0].f1), "no labels: no F1");
    cr_expect_eq(r.model.default_detector, ANOMALY_RESIDUAL, "documented default");
    cr_expect_eq(r.flags[ANOMALY_RESIDUAL].severity[310] == ANOMALY_NONE, 0,
                 "a drop to 0 in the day is still far from expected");
    anomaly_result_free(&r);
}

/* A CUSUM alarm dates a shift back to where its sum last stood at zero, so
 * noise a little above k just before a large shift would be flagged with
 * it (HVAC-Main, seed 42: 29 hours). The change point sized to the
 * detected shift leaves such a lead-in out and keeps the shift. */
Test(anomaly_rules, cusum_change_point_trims_a_lead_in)
{
    struct toy t;
    toy_init(&t);
    /* Noise sd 0.29 kWh, robust scale ~0.37: +0.35 kWh is z ~0.95, above
     * k = 0.5, for 12 hours (the sum climbs but stays below h = 8); then
     * +1.2 kWh (z ~3.2, below the z warning) for 24 hours. */
    for (int i = 400; i < 412; i++)
        t.e[i] += 0.35;
    for (int i = 412; i < 436; i++)
        t.e[i] += 1.2;
    struct anomaly_config cfg;
    anomaly_config_default(&cfg);
    struct anomaly_result r;
    char err[256] = "";
    cr_assert_eq(anomaly_fit(&t.s, NULL, NULL, &cfg, NULL, &r, err, sizeof err), 0, "%s", err);
    const struct anomaly_flags *f = &r.flags[ANOMALY_RESIDUAL];
    int lead = 0, shift = 0;
    for (int i = 400; i < 412; i++)
        lead += f->severity[i] != ANOMALY_NONE;
    for (int i = 412; i < 436; i++)
        shift += f->severity[i] != ANOMALY_NONE;
    cr_expect_leq(lead, 2, "%d of the 12 lead-in hours flagged", lead);
    cr_expect_geq(shift, 20, "%d of the 24 shifted hours flagged", shift);
    anomaly_result_free(&r);
}

Test(anomaly_rules, insufficient_data_and_bad_config)
{
    struct toy t;
    toy_init(&t);
    t.s.n = 24 * 10;
    struct anomaly_config cfg;
    anomaly_config_default(&cfg);
    struct anomaly_result r;
    char err[256] = "";
    cr_expect_eq(anomaly_fit(&t.s, NULL, NULL, &cfg, NULL, &r, err, sizeof err), ENMS_EINVAL);
    cr_expect_str_eq(err, "insufficient data: 10 days, need 14");
    t.s.n = 24 * 28;
    cfg.contamination = 0; /* 'auto' does not exist here */
    cr_expect_eq(anomaly_fit(&t.s, NULL, NULL, &cfg, NULL, &r, err, sizeof err), ENMS_EINVAL);
    anomaly_config_default(&cfg);
    cfg.expected = ANOMALY_EXPECTED_SUPPLIED;
    cr_expect_eq(anomaly_fit(&t.s, NULL, NULL, &cfg, NULL, &r, err, sizeof err), ENMS_EINVAL);
}

/* ---- demo data: the acceptance test ---------------------------------------- */

struct demo {
    struct series s;
    time_t *ts;
    double *energy, *production, *temp;
    unsigned char *labels;
    size_t na;
};

/* The demo seed: 42 (DEMO_DEFAULT_SEED, what the acceptance is stated on),
 * or ENMS_DEMO_SEED to log the same figures for another seed (see
 * docs/models-baseline-anomaly.md; only seed 42's figures are claimed by
 * the assertions). */
static uint64_t demo_seed(void)
{
    const char *v = getenv("ENMS_DEMO_SEED");
    char *end = NULL;
    unsigned long long s = v && *v ? strtoull(v, &end, 10) : DEMO_DEFAULT_SEED;
    cr_assert(!v || !*v || (*end == '\0' && s <= DEMO_SEED_MAX), "bad ENMS_DEMO_SEED %s", v);
    return (uint64_t)s;
}

static void demo_load(struct demo *d, size_t machine, size_t hours)
{
    const struct demo_machine *m = &demo_machines[machine];
    struct demo_reading *r = calloc(hours, sizeof *r);
    struct demo_anomaly a[DEMO_MAX_ANOMALIES];
    char err[256];
    cr_assert_not_null(r);
    cr_assert_eq(demo_generate(machine, demo_seed(), END_2026, hours, r, a, DEMO_MAX_ANOMALIES,
                               &d->na, err, sizeof err),
                 0);
    d->ts = malloc(hours * sizeof *d->ts);
    d->energy = malloc(hours * sizeof *d->energy);
    d->production = malloc(hours * sizeof *d->production);
    d->temp = malloc(hours * sizeof *d->temp);
    d->labels = malloc(hours);
    cr_assert(d->ts && d->energy && d->production && d->temp && d->labels);
    for (size_t k = 0; k < hours; k++) {
        d->ts[k] = r[k].ts;
        d->energy[k] = r[k].energy_kwh;
        d->production[k] = r[k].production_count;
        d->temp[k] = r[k].outdoor_temp_c;
    }
    d->s = (struct series){.n = hours,
                           .ts = d->ts,
                           .energy = d->energy,
                           .production = m->has_production ? d->production : NULL,
                           .temp_c = d->temp,
                           .utc_offset_s = demo_sites[m->site].utc_offset_h * 3600};
    time_t start[DEMO_MAX_ANOMALIES], end[DEMO_MAX_ANOMALIES];
    for (size_t j = 0; j < d->na; j++) {
        start[j] = a[j].start;
        end[j] = a[j].end;
    }
    anomaly_labels_from_intervals(&d->s, start, end, d->na, d->labels);
    free(r);
}

static void demo_free(struct demo *d)
{
    free(d->ts);
    free(d->energy);
    free(d->production);
    free(d->temp);
    free(d->labels);
}

/* Acceptance (issue 4): F1 >= 0.8 for the default detector on every
 * machine's injected anomalies (seed 42, the year 2025, 5 anomalies per
 * machine), and pooled over all 8. One machine's year holds one level
 * shift of 24-72 hours that dominates its hour count, so how the CUSUM
 * dates a shift's start decides that machine's figure (HVAC-Main: 0.764
 * before the change point was sized to the shift, 0.926 after). Figures
 * for other seeds: docs/models-baseline-anomaly.md. */
Test(anomaly_demo, default_detector_f1_on_injected_anomalies, .timeout = 120)
{
    size_t tp[ANOMALY_DETECTORS] = {0}, fp[ANOMALY_DETECTORS] = {0}, fn[ANOMALY_DETECTORS] = {0};
    size_t dtp = 0, dfp = 0, dfn = 0;
    struct anomaly_config cfg;
    anomaly_config_default(&cfg);
    cr_log_info("seed %llu", (unsigned long long)demo_seed());
    for (size_t i = 0; i < DEMO_MACHINE_COUNT; i++) {
        struct demo d;
        struct anomaly_result r;
        char err[256] = "";
        demo_load(&d, i, YEAR_H);
        cr_assert_eq(anomaly_fit(&d.s, NULL, d.labels, &cfg, NULL, &r, err, sizeof err), 0, "%s",
                     err);
        cr_expect_eq(r.model.expected, ANOMALY_EXPECTED_BASELINE);
        for (int k = 0; k < ANOMALY_DETECTORS; k++) {
            tp[k] += r.eval[k].tp;
            fp[k] += r.eval[k].fp;
            fn[k] += r.eval[k].fn;
            cr_expect_gt(r.eval[k].rate, 0);
        }
        const struct anomaly_eval *e = &r.eval[r.model.default_detector];
        dtp += e->tp;
        dfp += e->fp;
        dfn += e->fn;
        cr_log_info("%-20s forest F1 %.3f (P %.2f R %.2f)  residual F1 %.3f (P %.2f R %.2f, "
                    "rate %.4f)  default %s",
                    demo_machines[i].name, r.eval[0].f1, r.eval[0].precision, r.eval[0].recall,
                    r.eval[1].f1, r.eval[1].precision, r.eval[1].recall, r.eval[1].rate,
                    r.model.default_detector == ANOMALY_RESIDUAL ? "residual" : "forest");
        cr_expect_geq(e->f1, 0.8, "%s: default detector F1 %.3f", demo_machines[i].name, e->f1);
        anomaly_result_free(&r);
        demo_free(&d);
    }
    for (int k = 0; k < ANOMALY_DETECTORS; k++) {
        double p = (double)tp[k] / (double)(tp[k] + fp[k]),
               rc = (double)tp[k] / (double)(tp[k] + fn[k]);
        cr_log_info("pooled %s: precision %.3f recall %.3f F1 %.3f",
                    k == ANOMALY_IFOREST ? "forest" : "residual", p, rc, 2 * p * rc / (p + rc));
    }
    double p = (double)dtp / (double)(dtp + dfp), rc = (double)dtp / (double)(dtp + dfn);
    double f1 = 2 * p * rc / (p + rc);
    cr_expect_geq(f1, 0.8, "pooled F1 of the default detector %.3f", f1);
}

/* ---- hooks and the artifact ------------------------------------------------ */

struct hook_log {
    int stops, stop_after, trees_seen;
    double last;
    int backwards;
};

static void log_progress(void *opaque, double fraction, const char *stage)
{
    struct hook_log *l = opaque;
    l->backwards += fraction + 1e-12 < l->last;
    l->last = fraction;
    l->trees_seen += strncmp(stage, "tree ", 5) == 0;
}

static int log_stop(void *opaque)
{
    struct hook_log *l = opaque;
    return l->stop_after > 0 && ++l->stops >= l->stop_after;
}

Test(anomaly_json, round_trip_detects_the_same, .timeout = 60)
{
    struct demo d;
    struct anomaly_result r;
    struct anomaly_config cfg;
    char err[256] = "";
    anomaly_config_default(&cfg);
    demo_load(&d, 4, 90 * 24); /* Injection-Molding-1, the default 90 days */
    struct hook_log log = {0};
    struct model_hooks hooks = {log_progress, log_stop, &log};
    cr_assert_eq(anomaly_fit(&d.s, NULL, d.labels, &cfg, &hooks, &r, err, sizeof err), 0, "%s",
                 err);
    cr_expect_eq(log.backwards, 0);
    cr_expect_eq(log.trees_seen, 100, "a progress report per tree");
    cr_expect_eq(log.last, 1.0);

    cJSON *j = anomaly_model_to_json(&r.model);
    cr_assert_not_null(j);
    char *text = cJSON_PrintUnformatted(j);
    cr_assert_not_null(text);
    cr_log_info("anomaly artifact: %zu bytes", strlen(text));
    cJSON *back = cJSON_Parse(text);
    struct anomaly_model m;
    cr_assert_eq(anomaly_model_from_json(back, &m, err, sizeof err), 0, "%s", err);
    struct anomaly_flags out[ANOMALY_DETECTORS];
    for (int k = 0; k < ANOMALY_DETECTORS; k++) {
        out[k].score = malloc(d.s.n * sizeof *out[k].score);
        out[k].severity = malloc(d.s.n);
        cr_assert(out[k].score && out[k].severity);
    }
    cr_assert_eq(anomaly_detect(&m, &d.s, NULL, NULL, out, err, sizeof err), 0, "%s", err);
    for (int k = 0; k < ANOMALY_DETECTORS; k++)
        cr_expect_eq(memcmp(out[k].severity, r.flags[k].severity, d.s.n), 0,
                     "detector %d flags differ after a round trip", k);
    cJSON *metrics = anomaly_result_to_json(&r);
    cr_expect_not_null(cJSON_GetObjectItem(cJSON_GetObjectItem(metrics, "residual"), "f1"));
    cJSON_Delete(metrics);

    /* Hostile edits of the real artifact: each must be refused. */
    const char *edits[][2] = {
        {"\"trees\":100", "\"trees\":101"},
        {"\"features\":[\"hour\",\"weekday\"", "\"features\":[\"weekday\",\"hour\""},
        {"\"max_depth\":8", "\"max_depth\":99"},
        {"\"nodes\":[[", "\"nodes\":[[9,0.5,"},
        {"\"nodes\":[[", "\"nodes\":[[\"x\","},
        {"\"expected\":\"baseline\"", "\"expected\":\"oracle\""},
        {"\"scale\":", "\"scale\":-"},
        {"\"threshold\":", "\"threshold\":9"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char *at = strstr(text, edits[i][0]);
        cr_assert_not_null(at, "fixture %zu: %s not in the artifact", i, edits[i][0]);
        size_t pre = (size_t)(at - text), old = strlen(edits[i][0]), add = strlen(edits[i][1]);
        char *bad = malloc(strlen(text) + add + 1);
        cr_assert_not_null(bad);
        memcpy(bad, text, pre);
        strcpy(bad + pre, edits[i][1]);
        strcat(bad, at + old);
        cJSON *b = cJSON_Parse(bad);
        struct anomaly_model x;
        err[0] = '\0';
        int rc = b ? anomaly_model_from_json(b, &x, err, sizeof err) : ENMS_EINVAL;
        cr_expect_eq(rc, ENMS_EINVAL, "edit %zu accepted", i);
        if (rc == 0)
            anomaly_model_free(&x);
        cJSON_Delete(b);
        free(bad);
    }
    /* A tree that is one leaf short. */
    cJSON *nodes = cJSON_GetObjectItem(cJSON_GetObjectItem(back, "isolation_forest"), "nodes");
    cJSON *tree = cJSON_GetArrayItem(nodes, 0);
    cJSON_DeleteItemFromArray(tree, cJSON_GetArraySize(tree) - 1);
    cJSON_DeleteItemFromArray(tree, cJSON_GetArraySize(tree) - 1);
    struct anomaly_model x;
    cr_expect_eq(anomaly_model_from_json(back, &x, err, sizeof err), ENMS_EINVAL);

    struct hook_log stop = {.stop_after = 30};
    struct model_hooks stop_hooks = {NULL, log_stop, &stop};
    struct anomaly_result r2;
    cr_expect_eq(anomaly_fit(&d.s, NULL, NULL, &cfg, &stop_hooks, &r2, err, sizeof err),
                 ENMS_ESTOPPED);

    for (int k = 0; k < ANOMALY_DETECTORS; k++) {
        free(out[k].score);
        free(out[k].severity);
    }
    anomaly_model_free(&m);
    cJSON_Delete(back);
    cJSON_free(text);
    cJSON_Delete(j);
    anomaly_result_free(&r);
    demo_free(&d);
}
