/* fuzz_gretl.c - libFuzzer target for the gretl .gdt reader (ctl/gretl.c).
 *
 * The reader takes untrusted XML; whatever the input, it must either fail
 * with no output or return a NUL-terminated CSV buffer, and never touch
 * memory it does not own (ASan/UBSan). */
#include <stdint.h>
#include <stdlib.h>

#include "../ctl/gretl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *csv = NULL;
    size_t len = 0, nobs = 0;
    char err[256];
    if (gretl_to_csv((const char *)data, size, "9a1f3c5e-7b2d-4e6f-8a0b-1c2d3e4f5a60", 1992, &csv,
                     &len, &nobs, err, sizeof err) == 0) {
        if (!csv || csv[len] != '\0')
            abort();
    } else if (csv) {
        abort();
    }
    free(csv);
    return 0;
}
