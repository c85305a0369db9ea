/* gretl.h - turns an hourly gretl data file (.gdt) into import CSV.
 *
 * Debian's gretl-data ships data10-2.gdt: hourly electricity load (MW) and
 * temperature (°F) of a US utility for January 1992. This reader converts
 * such a file into the CSV that `enmsctl import` reads, so the real series
 * goes through exactly the same validation and loading as any other file.
 * It is a pure function over a buffer (no I/O) and reads only the small,
 * flat XML that gretl writes: no entities, comments or CDATA, no external
 * DTD is ever fetched. */
#ifndef ENMS_GRETL_H
#define ENMS_GRETL_H

#include <stddef.h>

/* Largest .gdt file accepted; data10-2.gdt is 20 KB. */
#define GRETL_MAX_FILE (16u * 1024u * 1024u)
/* Most observations and variables accepted: 20 years of hours, and more
 * variables than any gretl sample file has. */
#define GRETL_MAX_OBS  200000
#define GRETL_MAX_VARS 64

/* The calendar year of day 1 in data10-2.gdt, from its description. */
#define GRETL_DATA10_2_YEAR 1992

/* Converts an uncompressed gretl time series with frequency 24 and
 * observations marked "D.HH" (day D from 1, hour HH from 01 to 24) into CSV
 * with columns machine_id, ts, energy_kwh and, when the file has a `temp`
 * variable, outdoor_temp_c:
 *   - observation D.HH covers the hour starting at (D-1) days + (HH-1) hours
 *     after 00:00 on 1 January of `year`, written as UTC;
 *   - `load` in MW held for one hour is MWh, times 1000 is kWh;
 *   - `temp` in °F becomes °C.
 * A missing value (NA) leaves the field empty, so the import's validation
 * reports it with its line. Line N+1 of the CSV is observation N.
 *
 * machine_id: canonical UUID, copied into every line (the caller validates).
 * Returns 0 with *csv (caller frees with free()), *csv_len and *nobs set, or
 * ENMS_EINVAL / ENMS_ETOOBIG / ENMS_ENOMEM with the reason in err; *csv is
 * NULL on error. */
int gretl_to_csv(const char *buf, size_t len, const char *machine_id, int year, char **csv,
                 size_t *csv_len, size_t *nobs, char *err, size_t errlen);

#endif
