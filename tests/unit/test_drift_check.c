/* test_drift_check.c - unit tests of the pure parts of drift checking
 * (common/drift_check.c: the feature comparison and the temperature rule)
 * and of the demo generator's drift injection (ctl/demo_data.c). The
 * database path is covered by tests/integration/test_api_drift.py. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/config.h"
#include "../../common/drift_check.h"
#include "../../common/error.h"
#include "../../common/rng.h"
#include "../../ctl/demo_data.h"

#define END_2026 ((time_t)1767225600) /* 2026-01-01T00:00:00Z */
#define DEC_12   ((time_t)1765497600) /* 2025-12-12T00:00:00Z */

static struct enms_config test_cfg(void)
{
    struct enms_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.drift_psi = 0.25;
    cfg.drift_ks_alpha = 0.01;
    cfg.drift_perf = 0.5;
    cfg.drift_recent_days = 7;
    return cfg;
}

/* Independent N(mean, 1) values (Irwin-Hall) from a fixed seed. */
static void normals(uint64_t seed, double mean, double *x, size_t n)
{
    struct rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (int k = 0; k < 12; k++)
            s += rng_uniform(&r);
        x[i] = mean + s - 6;
    }
}

Test(drift_compare, a_large_shift_drifts_and_none_does_not)
{
    struct enms_config cfg = test_cfg();
    double ref[300], same[7], shifted[7];
    struct drift_feature f;
    normals(1, 0, ref, 300);
    normals(2, 0, same, 7);
    normals(3, 4, shifted, 7); /* four standard deviations */
    drift_compare(ref, 300, shifted, 7, 0.5, &cfg, &f);
    cr_assert(f.evaluated && f.drifted, "%s", f.reason);
    cr_assert_eq(f.ks_d, 1.0); /* every recent value above every reference one */
    cr_assert_gt(f.median_recent - f.median_ref, 3.0);
    drift_compare(ref, 300, same, 7, 0.5, &cfg, &f);
    cr_assert(f.evaluated && !f.drifted, "%s", f.reason);
}

Test(drift_compare, the_materiality_gate_holds_back_a_small_shift)
{
    struct enms_config cfg = test_cfg();
    double ref[300], shifted[7];
    struct drift_feature f;
    normals(1, 0, ref, 300);
    normals(3, 4, shifted, 7);
    /* Significant and moved, but the medians differ by about 4 < 10. */
    drift_compare(ref, 300, shifted, 7, 10.0, &cfg, &f);
    cr_assert(f.evaluated && !f.drifted);
    cr_assert(strstr(f.reason, "immaterial"), "%s", f.reason);
}

Test(drift_compare, too_few_values_are_not_evaluated)
{
    struct enms_config cfg = test_cfg();
    double ref[300], recent[7] = {1, 2, NAN, NAN, NAN, 3, 4};
    struct drift_feature f;
    normals(1, 0, ref, 300);
    drift_compare(ref, 300, recent, 7, 0, &cfg, &f);
    cr_assert(!f.evaluated && !f.drifted);
    cr_assert_eq(f.n_recent, 4);
    cr_assert(isnan(f.psi));
}

Test(drift_compare, temperature_drifts_only_beyond_the_range_and_margin)
{
    struct enms_config cfg = test_cfg();
    double ref[100], warm[7], hot[7];
    struct drift_feature f;
    for (int i = 0; i < 100; i++)
        ref[i] = (double)(i % 11); /* 0..10 degC */
    for (int i = 0; i < 7; i++) {
        warm[i] = 14.0; /* 4 degC above the range: inside the 5 degC margin */
        hot[i] = i < 3 ? 14.0 : 16.0;
    }
    drift_compare_temperature(ref, 100, warm, 7, &cfg, &f);
    cr_assert(f.evaluated && !f.drifted, "%s", f.reason);
    cr_assert_eq(f.ref_min, 0.0);
    cr_assert_eq(f.ref_max, 10.0);
    cr_assert_eq(f.share_out_of_range, 0.0);
    drift_compare_temperature(ref, 100, hot, 7, &cfg, &f);
    cr_assert(f.drifted, "%s", f.reason);
    cr_assert_float_eq(f.share_out_of_range, 4.0 / 7.0, 1e-12);
}

/* ---- the demo generator's drift injection -------------------------------- */

Test(demo_drift, parse_accepts_names_and_ids_and_refuses_nonsense)
{
    struct demo_drift d;
    char err[256];
    cr_assert_eq(demo_parse_drift("Conveyor-A:2025-12-12:production:1.3", &d, err, sizeof err),
                 ENMS_OK, "%s", err);
    cr_assert_eq(d.machine, 2);
    cr_assert_eq(d.from, DEC_12);
    cr_assert_eq(d.feature, DEMO_DRIFT_PRODUCTION);
    cr_assert_eq(d.factor, 1.3);
    cr_assert_eq(demo_parse_drift("C0000000-0000-0000-0000-000000000008:2025-12-12:temperature:-4",
                                  &d, err, sizeof err),
                 ENMS_OK, "%s", err);
    cr_assert_eq(d.machine, 7);
    cr_assert_eq(d.factor, -4.0);
    const char *bad[] = {"",
                         "Conveyor-A:2025-12-12:production",
                         "Conveyor-A:2025-12-12:energy:1:2",
                         "Boiler-1:2025-12-12:production:1.2",
                         "Boiler-1:2025-12-12:energy:inf",
                         "Boiler-1:2025-12-12:energy:11",
                         "Boiler-1:2025-12-12:energy:1.2x",
                         "Boiler-1:12-12-2025:energy:1.2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(demo_parse_drift(bad[i], &d, err, sizeof err), ENMS_EINVAL, "%s", bad[i]);
}

Test(demo_drift, applies_from_the_date_and_only_to_its_machine)
{
    size_t hours = 60 * 24;
    struct demo_reading *a = calloc(hours, sizeof *a), *b = calloc(hours, sizeof *b);
    char err[256];
    cr_assert(a && b);
    struct demo_drift drifts[] = {
        {.machine = 1, .from = DEC_12, .feature = DEMO_DRIFT_TEMPERATURE, .factor = 3.0},
        {.machine = 0, .from = DEC_12, .feature = DEMO_DRIFT_ENERGY, .factor = 2.0},
    };
    /* HVAC-Main (machine 1): +3 degC, energy moved by its degree-hour terms
     * (1.8 kWh per heating degree-hour below 15 degC, 3.2 per cooling above 21). */
    cr_assert_eq(demo_generate_clean(1, 42, END_2026, hours, a, err, sizeof err), ENMS_OK);
    memcpy(b, a, hours * sizeof *a);
    cr_assert_eq(demo_apply_drifts(1, drifts, 2, b, hours, err, sizeof err), ENMS_OK, "%s", err);
    size_t changed = 0;
    for (size_t k = 0; k < hours; k++) {
        if (a[k].ts < DEC_12) {
            cr_assert(memcmp(&a[k], &b[k], sizeof a[k]) == 0);
            continue;
        }
        changed++;
        cr_assert_float_eq(b[k].outdoor_temp_c, a[k].outdoor_temp_c + 3.0, 1e-9);
        double t0 = a[k].outdoor_temp_c, t1 = b[k].outdoor_temp_c;
        double dh = 1.8 * (fmax(0, 15 - t1) - fmax(0, 15 - t0)) +
                    3.2 * (fmax(0, t1 - 21) - fmax(0, t0 - 21));
        cr_assert_float_eq(b[k].energy_kwh, a[k].energy_kwh + dh, 2e-4);
    }
    cr_assert_eq(changed, 20 * 24);
    /* A drift of another machine changes nothing. */
    memcpy(b, a, hours * sizeof *a);
    struct demo_drift other = {.machine = 5, .from = DEC_12, .factor = 2.0};
    cr_assert_eq(demo_apply_drifts(1, &other, 1, b, hours, err, sizeof err), ENMS_OK);
    cr_assert(memcmp(a, b, hours * sizeof *a) == 0);
    free(a);
    free(b);
}
