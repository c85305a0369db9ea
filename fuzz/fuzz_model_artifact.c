/* fuzz_model_artifact.c - libFuzzer target for the model artifact loaders
 * (worker/models/model_json.c): baseline_model_from_json() and
 * anomaly_model_from_json().
 *
 * Artifacts come back from the database and the API, so the loaders take
 * hostile JSON. Whatever the input: a loader either fails with a message
 * and leaves nothing allocated, or returns a model that can be used at once
 * (predict and detect on a small series without touching memory it does not
 * own) and that writes back to JSON which loads again. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "../common/error.h"
#include "../worker/models/anomaly.h"
#include "../worker/models/baseline.h"

#define HOURS (24 * 3)

/* Writes j as text and parses it back, as storing an artifact does (the
 * writers emit numbers as exact raw text, which only a parse turns back
 * into number items). Frees j. */
static cJSON *reparse(cJSON *j)
{
    char *text = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!text)
        return NULL;
    cJSON *back = cJSON_Parse(text);
    cJSON_free(text);
    return back;
}

static void exercise_baseline(const struct baseline_model *m, const struct series *s, double *out)
{
    char err[256];
    if (m->granularity == BASELINE_HOURLY)
        baseline_predict_hours(m, s, out, err, sizeof err);
    (void)baseline_predict_row(m, 2, 13, 10.0, 1.0, 1.0);
    cJSON *j = reparse(baseline_model_to_json(m));
    if (!j)
        return;
    struct baseline_model again;
    if (baseline_model_from_json(j, &again, err, sizeof err) != 0)
        abort(); /* what we write we must read */
    cJSON_Delete(j);
}

static void exercise_anomaly(const struct anomaly_model *m, const struct series *s,
                             const double *expected)
{
    char err[256];
    double score[2][HOURS];
    unsigned char sev[2][HOURS];
    struct anomaly_flags out[2] = {{score[0], sev[0]}, {score[1], sev[1]}};
    anomaly_detect(m, s, expected, NULL, out, err, sizeof err);
    cJSON *j = reparse(anomaly_model_to_json(m));
    if (!j)
        return;
    struct anomaly_model again;
    if (anomaly_model_from_json(j, &again, err, sizeof err) != 0)
        abort();
    anomaly_model_free(&again);
    cJSON_Delete(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *j = cJSON_ParseWithLength((const char *)data, size);
    if (!j)
        return 0;
    time_t ts[HOURS];
    double energy[HOURS], prod[HOURS], temp[HOURS], expected[HOURS], out[HOURS];
    for (int i = 0; i < HOURS; i++) {
        ts[i] = (time_t)1767225600 + (time_t)i * 3600;
        energy[i] = i % 7 == 3 ? NAN : 10.0 + (i % 24);
        prod[i] = (double)(i % 5);
        temp[i] = i % 11 == 0 ? NAN : -5.0 + i * 0.5;
        expected[i] = 12.0;
    }
    struct series s = {.n = HOURS, .ts = ts, .energy = energy, .production = prod, .temp_c = temp};

    char err[256];
    struct baseline_model b;
    if (baseline_model_from_json(j, &b, err, sizeof err) == 0)
        exercise_baseline(&b, &s, out);
    else if (!memchr(err, '\0', sizeof err) || err[0] == '\0')
        abort(); /* a failure always says why */

    struct anomaly_model a;
    if (anomaly_model_from_json(j, &a, err, sizeof err) == 0) {
        exercise_anomaly(&a, &s, expected);
        anomaly_model_free(&a);
    } else if (a.forest.nodes || a.forest.offset) {
        abort(); /* nothing left allocated on failure */
    }
    cJSON_Delete(j);
    return 0;
}
