/* anomaly.h - anomaly detection on one machine's hourly energy: two
 * detectors trained and scored on the same hours, the better one (by F1 on
 * labelled anomalies when there are labels) marked the default.
 *
 *  - Isolation Forest (Liu, Ting & Zhou 2008, iforest.c) over hour of day,
 *    weekday, energy, production, temperature and the residual from the
 *    expected energy; threshold from a contamination rate.
 *  - Residual monitoring as energy management practice does it: a robust
 *    z-score (median/MAD) of energy minus its expected value, CUSUM (Page
 *    1954) on the standardised residuals for level shifts, and a stuck-meter
 *    rule (the same reading for hours on end).
 *
 * The expected value comes from an hourly baseline fitted here (baseline.h,
 * hourly granularity), from the caller (an active baseline's predictions),
 * or from an hour-of-week median profile when there are no drivers.
 * Matching rule, severities and defaults: docs/models-baseline-anomaly.md. */
#ifndef ENMS_ANOMALY_H
#define ENMS_ANOMALY_H

#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "baseline.h"
#include "iforest.h"
#include "model.h"
#include "series.h"

enum anomaly_detector {
    ANOMALY_IFOREST = 0,
    ANOMALY_RESIDUAL = 1,
};
#define ANOMALY_DETECTORS 2

enum anomaly_severity {
    ANOMALY_NONE = 0,
    ANOMALY_WARNING = 1,
    ANOMALY_CRITICAL = 2,
};

/* Where the expected energy of an hour comes from. */
enum anomaly_expected {
    ANOMALY_EXPECTED_AUTO = 0,     /* supplied if given, else hourly baseline, else profile */
    ANOMALY_EXPECTED_PROFILE = 1,  /* median per hour of week */
    ANOMALY_EXPECTED_BASELINE = 2, /* an hourly baseline fitted on the training data */
    ANOMALY_EXPECTED_SUPPLIED = 3, /* the caller's array (e.g. the active baseline) */
};

/* Feature columns of the forest, in this order when present. */
enum anomaly_feature {
    ANOMALY_F_HOUR = 0,
    ANOMALY_F_WEEKDAY,
    ANOMALY_F_ENERGY,
    ANOMALY_F_PRODUCTION,
    ANOMALY_F_TEMPERATURE,
    ANOMALY_F_RESIDUAL,
    ANOMALY_F_COUNT
};
const char *anomaly_feature_name(enum anomaly_feature f);

struct anomaly_config {
    int trees;               /* 100 */
    int subsample;           /* 256 */
    double contamination;    /* share of training hours the forest flags: 0.01 */
    double critical_share;   /* of those, the top share that is critical: 0.2 */
    uint64_t seed;           /* forest seed: 42 */
    double z_warning;        /* |z| >= 3.5: warning */
    double z_critical;       /* |z| >= 5: critical */
    double cusum_k, cusum_h; /* CUSUM allowance and decision interval: 0.5, 8 */
    int stuck_hours;         /* >= 6 equal consecutive readings: a stuck meter */
    enum anomaly_expected expected;
};

void anomaly_config_default(struct anomaly_config *cfg);

/* Everything needed to score new hours: the artifact. */
struct anomaly_model {
    int utc_offset_s;
    enum anomaly_detector default_detector;
    /* forest */
    int features[ANOMALY_F_COUNT]; /* 1 when the feature is a column */
    int nfeatures;
    struct iforest forest;
    double contamination;
    double if_threshold, if_critical; /* score thresholds */
    /* residual monitoring */
    enum anomaly_expected expected; /* PROFILE, BASELINE or SUPPLIED */
    double profile[168];            /* median energy by local hour of week (Monday 00 first) */
    struct baseline_model baseline; /* when expected is BASELINE */
    double residual_median, residual_scale; /* z = (r - median) / scale, scale = 1.4826 MAD */
    double residual_rho;                    /* lag-1 autocorrelation of z, for CUSUM */
    double z_warning, z_critical, cusum_k, cusum_h;
    int stuck_hours;
};

/* Frees the forest of m and zeroes it. */
void anomaly_model_free(struct anomaly_model *m);

/* Per-hour output of one detector on a series of n hours. */
struct anomaly_flags {
    double *score;           /* forest: s in (0, 1]; residual: |z|; NAN when unscored */
    unsigned char *severity; /* enum anomaly_severity */
};

/* Hour-level evaluation: an hour is positive when it lies inside a labelled
 * interval; precision, recall and F1 count hours, over hours with a reading. */
struct anomaly_eval {
    size_t hours, flagged;
    double rate; /* flagged / hours: always reported */
    int labelled;
    size_t tp, fp, fn;
    double precision, recall, f1; /* NAN without labels */
};

struct anomaly_result {
    struct anomaly_model model;
    size_t n;
    struct anomaly_flags flags[ANOMALY_DETECTORS]; /* on the training hours */
    struct anomaly_eval eval[ANOMALY_DETECTORS];
    int baseline_fitted; /* the residual detector used its own hourly baseline */
};

/* Frees what r owns (model and flags) and zeroes it. */
void anomaly_result_free(struct anomaly_result *r);

/* Trains both detectors on s, scores the same hours with each, evaluates
 * them against labels (n bytes, nonzero = inside a labelled anomaly; NULL
 * when there are none) and picks the default. expected: n predictions or
 * NULL. On success *out owns its arrays (anomaly_result_free()); on error
 * it is empty. Returns 0, ENMS_EINVAL ("insufficient data: ..."),
 * ENMS_ENOMEM or ENMS_ESTOPPED. */
int anomaly_fit(const struct series *s, const double *expected, const unsigned char *labels,
                const struct anomaly_config *cfg, const struct model_hooks *hooks,
                struct anomaly_result *out, char *err, size_t errlen);

/* Scores the hours of s with a trained (or loaded) model: out[d].score and
 * out[d].severity must each hold s->n entries. expected is required when
 * the model's expected kind is SUPPLIED, ignored otherwise. Returns 0 or
 * ENMS_EINVAL / ENMS_ENOMEM / ENMS_ESTOPPED. */
int anomaly_detect(const struct anomaly_model *m, const struct series *s, const double *expected,
                   const struct model_hooks *hooks, struct anomaly_flags out[ANOMALY_DETECTORS],
                   char *err, size_t errlen);

/* Evaluates flags against labels over the hours of s that have energy. */
void anomaly_evaluate(const struct series *s, const struct anomaly_flags *flags,
                      const unsigned char *labels, struct anomaly_eval *ev);

/* Marks labels[i] = 1 for every reading of s inside one of the count
 * intervals [start[j], end[j]) (end exclusive, as anomaly_labels stores
 * them). labels has s->n entries. */
void anomaly_labels_from_intervals(const struct series *s, const time_t *start, const time_t *end,
                                   size_t count, unsigned char *labels);

/* The artifact (model_json.c): both detectors with the forest's trees in
 * compact preorder form, thresholds, feature names and the expected-value
 * model. Returns a tree the caller frees with cJSON_Delete(), or NULL when
 * out of memory. Numbers are exact raw text items: print, then parse, to
 * read it back. */
cJSON *anomaly_model_to_json(const struct anomaly_model *m);

/* Evaluation of both detectors (rate always; precision, recall, F1 with
 * labels) and which one is the default. Caller frees; NULL when out of
 * memory. */
cJSON *anomaly_result_to_json(const struct anomaly_result *r);

/* Loads an artifact written by anomaly_model_to_json(). Untrusted input:
 * sizes are bounded (ANOMALY_MAX_NODES), numbers must be finite, trees
 * well-formed. Returns 0 with *m filled (caller frees with
 * anomaly_model_free()), or ENMS_EINVAL / ENMS_ETOOBIG / ENMS_ENOMEM with a
 * sentence in err (then *m is empty). */
int anomaly_model_from_json(const cJSON *j, struct anomaly_model *m, char *err, size_t errlen);

/* Most tree nodes a loaded forest may have in total (100 trees of a
 * subsample of 256 need at most 51,100). */
#define ANOMALY_MAX_NODES 2000000

#endif
