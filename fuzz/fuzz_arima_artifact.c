/* fuzz_arima_artifact.c - libFuzzer target for the ARIMA artifact loader
 * (worker/models/arima_json.c).
 *
 * Artifacts come back from the database and could have been altered; the
 * loader must either refuse the input with ENMS_EINVAL and a message, or
 * return a model that forecasts without touching memory it does not own
 * (ASan/UBSan). */
#include <stdint.h>
#include <stdlib.h>

#include "../common/error.h"
#include "../worker/models/arima.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct arima_model *m = NULL;
    char err[256];
    err[0] = '\0';
    int rc = arima_from_json_text((const char *)data, size, &m, err, sizeof err);
    if (rc == 0) {
        double mean[4], se[4];
        if (!m)
            abort();
        /* A loaded model must be usable as it stands. */
        if (arima_forecast(m, 4, mean, se, err, sizeof err) != 0)
            abort();
        arima_free(m);
    } else if (m || err[0] == '\0' || (rc != ENMS_EINVAL && rc != ENMS_ENOMEM)) {
        abort();
    }
    return 0;
}
