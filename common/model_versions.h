/* model_versions.h - deploying a trained model version: the one place
 * that flips model_versions.is_active, shared by POST
 * /api/v1/models/{id}/activate (rollback) and A/B decisions. */
#ifndef ENMS_COMMON_MODEL_VERSIONS_H
#define ENMS_COMMON_MODEL_VERSIONS_H

#include <stddef.h>
#include <libpq-fe.h>

/* Makes version_id the active version of its machine and model type: the
 * current active one goes off first (the partial unique index
 * uq_model_versions_active allows one at any moment), then version_id comes
 * on; activated_at is kept when it already was active. A transaction-scoped
 * advisory lock on (machine, type) serialises concurrent activations. Must
 * run inside a transaction the caller opened, so the change commits with
 * the caller's other writes. prev (>= 37 bytes) receives the previously
 * active id ("" when none; version_id itself when it already was); version
 * (may be NULL) its version number as text. Returns ENMS_OK,
 * ENMS_ENOTFOUND or ENMS_EDB. */
int model_version_activate(PGconn *conn, const char *version_id, char *prev, size_t prevlen,
                           char *version, size_t versionlen, char *err, size_t errlen);

#endif
