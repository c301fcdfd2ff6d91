#ifndef STRATAFS_ERRORS_H
#define STRATAFS_ERRORS_H

#include <node_api.h>

/* Builds an Error shaped like Node's fs errors (code, negative errno, syscall,
 * path, dest) so callers can treat native and fs failures the same way.
 * path/dest may be NULL. Returns NULL only if N-API itself failed. */
napi_value errno_error(napi_env env, int err, const char *syscall,
                       const char *path, const char *dest);

/* Always returns NULL so call sites can write `return throw_errno(...)`. */
napi_value throw_errno(napi_env env, int err, const char *syscall,
                       const char *path, const char *dest);

napi_value throw_type(napi_env env, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
napi_value throw_range(napi_env env, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* For N-API calls that only fail on programmer error or OOM: make sure the
 * caller sees an exception instead of a silent undefined. */
napi_value throw_napi_failure(napi_env env, napi_status status);

#define NAPI_OK(env, call)                                  \
  do {                                                      \
    napi_status napi_ok_status_ = (call);                   \
    if (napi_ok_status_ != napi_ok)                         \
      return throw_napi_failure((env), napi_ok_status_);    \
  } while (0)

#endif
