/* ab_tests.h - A/B tests of two model versions in shadow mode: starting a
 * test, judging it from its paired samples (model_ab_test_samples, written
 * by the evaluation jobs) with a paired test, recording a decision that
 * activates the winner, and ending tests whose time is up.
 *
 * Owns the rows of model_ab_tests and the statistics built on them; it does
 * not write paired samples (worker/evaluation.c does) and does not parse
 * HTTP (api/routes_abtest.c does). Every function takes the caller's
 * connection and runs its own transactions on it. */
#ifndef ENMS_COMMON_AB_TESTS_H
#define ENMS_COMMON_AB_TESTS_H

#include <stddef.h>
#include <cJSON.h>
#include <libpq-fe.h>

/* A winner is declared only with at least this many paired samples (and
 * p < 1 - confidence_level). Forecasts need two days of hourly samples,
 * because their Diebold-Mariano variance spans AB_DM_HORIZON lags. */
#define AB_MIN_PAIRED_SAMPLES          10
#define AB_MIN_PAIRED_SAMPLES_FORECAST 48
/* Hourly losses of 24-hour rolling-origin forecasts overlap for 23 lags. */
#define AB_DM_HORIZON 24
/* Samples read for one judgement (a 90-day test has 2160 hourly ones). */
#define AB_SAMPLES_MAX 100000

#define AB_DURATION_MIN_H 0.001 /* 3.6 s: lets tests and demos expire quickly */
#define AB_DURATION_MAX_H 2160  /* 90 days */
#define AB_CONFIDENCE_MIN 0.5
#define AB_CONFIDENCE_MAX 0.999
#define AB_TEST_NAME_MAX  200
#define AB_NOTES_MAX      2000
#define AB_DECIDED_BY_MAX 200

/* The paired test's verdict on losses of version a and b (pure; no
 * database). */
struct ab_verdict {
    size_t n;           /* paired samples judged */
    size_t min_samples; /* AB_MIN_PAIRED_SAMPLES or ..._FORECAST */
    const char *test;   /* "wilcoxon_signed_rank" or "diebold_mariano" */
    const char *loss;   /* "absolute_error", "squared_error" or "zero_one" */
    int has_statistic;  /* 0 when the test could not run (see note) */
    double statistic;   /* Wilcoxon V or corrected DM */
    double p_value;     /* two-sided; 1 when every difference is 0 */
    double mean_diff;   /* mean of loss_a - loss_b; negative: a is better */
    int winner;         /* 0 no winner, 1 version a, 2 version b */
    char note[256];     /* why there is no winner, or the test's remark */
};

/* Judges n paired losses of a model_type ("baseline", "anomaly",
 * "forecast_arima") at confidence_level: Wilcoxon signed-rank (baseline,
 * anomaly) or Diebold-Mariano with horizon min(AB_DM_HORIZON, n / 2)
 * (forecast_arima). Fills v; *metrics_a and *metrics_b receive new objects
 * (n, mean_loss, and mae/rmse or error_rate as fits the type) the caller
 * frees with cJSON_Delete. Returns ENMS_OK, ENMS_EINVAL (unknown type) or
 * ENMS_ENOMEM; a test that cannot run is not an error (no winner). */
int ab_judge(const char *model_type, const double *loss_a, const double *loss_b, size_t n,
             double confidence_level, struct ab_verdict *v, cJSON **metrics_a, cJSON **metrics_b,
             char *err, size_t errlen);

struct ab_start_input {
    const char *test_name;
    const char *model_type; /* baseline | anomaly | forecast_arima */
    const char *machine_id; /* canonical lower-case uuid */
    const char *model_a_id;
    const char *model_b_id;
    double duration_hours;   /* AB_DURATION_MIN_H .. AB_DURATION_MAX_H */
    double traffic_split_a;  /* (0, 1); b gets the rest */
    double confidence_level; /* AB_CONFIDENCE_MIN .. AB_CONFIDENCE_MAX */
};

/* Starts a running test. Returns ENMS_OK with the new row as JSON in *out
 * (test_id, status, test_start, test_end, ...; caller frees with
 * cJSON_Delete); ENMS_ENOTFOUND (machine or version unknown), ENMS_EINVAL
 * (a version of another machine or type, the same version twice, a value
 * out of range), ENMS_ECONFLICT (a test of that machine and type is already
 * running: its id in existing_id, 37 bytes) or ENMS_EDB. Tests of that
 * machine and type whose end has passed are finished first. Nothing is
 * written unless ENMS_OK. */
int ab_tests_start(PGconn *conn, const struct ab_start_input *in, cJSON **out, char *existing_id,
                   char *err, size_t errlen);

/* Judges test_id from its paired samples and stores the judgement
 * (model_a_metrics, model_b_metrics, statistical_significance, results,
 * test_method, paired_samples); a running test past its end is completed
 * on the way, with its winner recorded (not activated). *out receives the
 * results object (caller frees with cJSON_Delete). Returns ENMS_OK,
 * ENMS_ENOTFOUND or ENMS_EDB / ENMS_ENOMEM. */
int ab_tests_results(PGconn *conn, const char *test_id, cJSON **out, char *err, size_t errlen);

/* Records decision ("promote_a", "promote_b", "no_winner",
 * "manual_review") with notes and decided_by (either may be NULL), judges
 * the test one last time, completes it, and for promote_* activates that
 * version (the current active one deactivated) in the same transaction.
 * A test completed by its end time without a decision can still be
 * decided. *out as ab_tests_results plus the decision. Returns ENMS_OK,
 * ENMS_ENOTFOUND, ENMS_ECONFLICT (already decided or cancelled, or the
 * version to promote no longer exists), ENMS_EINVAL or ENMS_EDB. */
int ab_tests_decide(PGconn *conn, const char *test_id, const char *decision, const char *notes,
                    const char *decided_by, cJSON **out, char *err, size_t errlen);

/* Completes every running test whose test_end has passed, storing its
 * judgement and winner (not activating it: promotion is a person's
 * decision, see docs/ab-tests.md). For housekeeping. Returns ENMS_OK or
 * ENMS_EDB (tests finished before the failure stay finished). */
int ab_tests_finish_expired(PGconn *conn, char *err, size_t errlen);

#endif
