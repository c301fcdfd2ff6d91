#include "errors.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* Node names errors after libuv (EOPNOTSUPP is "ENOTSUP" there), so use the
 * same tables to keep native errors indistinguishable from fs ones; glibc is
 * the fallback for the few errnos libuv has no name for. */
static void error_name(int err, char *buf, size_t len) {
  uv_err_name_r(-err, buf, len);
  if (strncmp(buf, "Unknown", 7) == 0) {
    const char *n = strerrorname_np(err);
    snprintf(buf, len, "%s", n ? n : "UNKNOWN");
  }
}

static void error_text(int err, char *buf, size_t len) {
  uv_strerror_r(-err, buf, len);
  if (strncmp(buf, "Unknown system error", 20) == 0) {
    snprintf(buf, len, "%s", strerror(err));
    buf[0] = (char)tolower((unsigned char)buf[0]);
  }
}

static int set_str(napi_env env, napi_value obj, const char *key,
                   const char *val) {
  napi_value v;
  if (napi_create_string_utf8(env, val, NAPI_AUTO_LENGTH, &v) != napi_ok)
    return -1;
  return napi_set_named_property(env, obj, key, v) == napi_ok ? 0 : -1;
}

napi_value errno_error(napi_env env, int err, const char *syscall,
                       const char *path, const char *dest) {
  char name[64], text[128];
  error_name(err, name, sizeof(name));
  error_text(err, text, sizeof(text));

  size_t len = strlen(name) + strlen(text) + strlen(syscall) + 16 +
               (path ? strlen(path) + 3 : 0) + (dest ? strlen(dest) + 7 : 0);
  char *msg = malloc(len);
  if (!msg) return NULL;
  int n = snprintf(msg, len, "%s: %s, %s", name, text, syscall);
  if (path) n += snprintf(msg + n, len - n, " '%s'", path);
  if (dest) snprintf(msg + n, len - n, " -> '%s'", dest);

  napi_value code_v, msg_v, error, errno_v;
  napi_status st = napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code_v);
  if (st == napi_ok)
    st = napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &msg_v);
  free(msg);
  if (st != napi_ok) return NULL;
  if (napi_create_error(env, code_v, msg_v, &error) != napi_ok) return NULL;
  if (napi_create_int32(env, -err, &errno_v) != napi_ok ||
      napi_set_named_property(env, error, "errno", errno_v) != napi_ok ||
      set_str(env, error, "syscall", syscall) != 0 ||
      (path && set_str(env, error, "path", path) != 0) ||
      (dest && set_str(env, error, "dest", dest) != 0))
    return NULL;
  return error;
}

napi_value throw_errno(napi_env env, int err, const char *syscall,
                       const char *path, const char *dest) {
  napi_value e = errno_error(env, err, syscall, path, dest);
  if (e)
    napi_throw(env, e);
  else
    napi_throw_error(env, NULL, "stratafs_native: failed to build error");
  return NULL;
}

napi_value throw_type(napi_env env, const char *code, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  napi_throw_type_error(env, code, msg);
  return NULL;
}

napi_value throw_range(napi_env env, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
  return NULL;
}

napi_value throw_napi_failure(napi_env env, napi_status status) {
  /* Read the error info first: napi_is_exception_pending() resets it. */
  const napi_extended_error_info *info = NULL;
  char msg[160];
  napi_get_last_error_info(env, &info);
  snprintf(msg, sizeof(msg), "stratafs_native: N-API call failed (%d): %s",
           (int)status,
           info && info->error_message ? info->error_message : "unknown");
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, NULL, msg);
  return NULL;
}
