/* fuzz_csv_reading.c - libFuzzer target for the CSV reading parser.
 *
 * The input is treated as a file: its first line goes to the header parser,
 * every later line to the line parser. The timestamp and UUID parsers also
 * see the whole input. Besides memory errors (ASan/UBSan), the target checks
 * that every accepted reading obeys the documented bounds and that an
 * accepted whole-hour timestamp survives a format/parse round trip. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../common/error.h"
#include "../ctl/csv_reading.h"

static void check_reading(const struct csv_reading *r)
{
    char text[CSV_READING_TS_TEXT];
    char err[256];
    int64_t back = 0;

    if (strlen(r->machine_id) != 36)
        abort();
    if (!(r->energy_kwh >= 0.0 && r->energy_kwh <= CSV_READING_MAX_ENERGY_KWH))
        abort();
    if (r->has_production && !(r->production_count >= 0.0 && isfinite(r->production_count)))
        abort();
    if (r->has_temp && !(r->outdoor_temp_c >= CSV_READING_MIN_TEMP_C &&
                         r->outdoor_temp_c <= CSV_READING_MAX_TEMP_C))
        abort();
    if (r->ts % 900 != 0)
        abort();
    /* The formatted text is UTC; only whole UTC hours parse back as hourly. */
    csv_reading_format_ts(r->ts, text);
    if (r->ts % 3600 == 0 &&
        (csv_reading_parse_ts(text, strlen(text), &back, err, sizeof err) != 0 || back != r->ts))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    char err[256];
    char uuid[37];
    int64_t ts;
    struct csv_header hdr;
    struct csv_reading r;

    if (csv_reading_parse_ts(buf, size, &ts, err, sizeof err) == 0 && ts % 900 != 0)
        abort();
    (void)csv_reading_parse_uuid(buf, size, uuid, err, sizeof err);

    const char *nl = memchr(buf, '\n', size);
    size_t first = nl ? (size_t)(nl - buf) + 1 : size;
    if (csv_reading_parse_header(buf, first, &hdr, err, sizeof err) != 0) {
        /* Still exercise the line parser with a fixed header. */
        hdr.ncols = CSV_COL_COUNT;
        for (int i = 0; i < CSV_COL_COUNT; i++)
            hdr.col[i] = (enum csv_column)i;
    }
    if (hdr.ncols < 3 || hdr.ncols > CSV_COL_COUNT)
        abort();

    size_t pos = first;
    while (pos < size) {
        const char *line = buf + pos;
        const char *end = memchr(line, '\n', size - pos);
        size_t len = end ? (size_t)(end - line) + 1 : size - pos;
        if (!csv_reading_is_blank(line, len) &&
            csv_reading_parse_line(&hdr, line, len, &r, err, sizeof err) == 0)
            check_reading(&r);
        pos += len;
    }
    return 0;
}
