#include "args.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

bool get_args(napi_env env, napi_callback_info info, size_t want,
              napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    throw_napi_failure(env, napi_generic_failure);
    return false;
  }
  if (argc < want) {
    throw_type(env, "ERR_MISSING_ARGS", "expected %zu arguments, got %zu",
               want, argc);
    return false;
  }
  return true;
}

/* A Buffer is a Uint8Array; napi_is_buffer() would also admit DataView and
 * other views whose layout typedarray_info cannot describe. */
static bool is_bytes(napi_env env, napi_value v) {
  bool yes = false;
  if (napi_is_typedarray(env, v, &yes) != napi_ok || !yes) return false;
  napi_typedarray_type t;
  if (napi_get_typedarray_info(env, v, &t, NULL, NULL, NULL, NULL) != napi_ok)
    return false;
  return t == napi_uint8_array;
}

bool arg_bytes(napi_env env, napi_value v, const char *what, void **data,
               size_t *len) {
  if (!is_bytes(env, v)) {
    throw_type(env, "ERR_INVALID_ARG_TYPE",
               "The \"%s\" argument must be an instance of Buffer or "
               "Uint8Array", what);
    return false;
  }
  size_t n = 0;
  void *p = NULL;
  /* typedarray_info already applies byte_offset, unlike the raw buffer. */
  if (napi_get_typedarray_info(env, v, NULL, &n, &p, NULL, NULL) != napi_ok) {
    throw_napi_failure(env, napi_generic_failure);
    return false;
  }
  *data = p;
  *len = n;
  return true;
}

bool arg_str(napi_env env, napi_value v, const char *what, str_arg *out) {
  out->s = out->inline_buf;
  out->len = 0;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) goto fail;

  if (t == napi_string) {
    size_t len;
    if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok)
      goto fail;
    if (len >= sizeof(out->inline_buf) && !(out->s = malloc(len + 1)))
      goto oom;
    if (napi_get_value_string_utf8(env, v, out->s, len + 1, &out->len) !=
        napi_ok)
      goto fail;
  } else if (is_bytes(env, v)) {
    void *data;
    size_t len;
    if (!arg_bytes(env, v, what, &data, &len)) goto fail_thrown;
    if (len >= sizeof(out->inline_buf) && !(out->s = malloc(len + 1)))
      goto oom;
    memcpy(out->s, data, len);
    out->s[len] = '\0';
    out->len = len;
  } else {
    throw_type(env, "ERR_INVALID_ARG_TYPE",
               "The \"%s\" argument must be of type string or an instance "
               "of Buffer", what);
    return false;
  }

  /* The kernel would silently stop at an embedded NUL and act on a
   * different name than the caller meant. */
  if (memchr(out->s, '\0', out->len)) {
    str_arg_free(out);
    throw_type(env, "ERR_INVALID_ARG_VALUE",
               "The \"%s\" argument must not contain null bytes", what);
    return false;
  }
  return true;

oom:
  out->s = out->inline_buf;
  napi_throw_error(env, NULL, "stratafs_native: out of memory");
  return false;
fail:
  str_arg_free(out);
  throw_napi_failure(env, napi_generic_failure);
  return false;
fail_thrown:
  str_arg_free(out);
  return false;
}

void str_arg_free(str_arg *a) {
  if (a->s && a->s != a->inline_buf) free(a->s);
  a->s = a->inline_buf;
}

bool arg_i64(napi_env env, napi_value v, const char *what, int64_t min,
             int64_t max, int64_t *out) {
  napi_valuetype t;
  double d;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) {
    throw_type(env, "ERR_INVALID_ARG_TYPE",
               "The \"%s\" argument must be of type number", what);
    return false;
  }
  napi_get_value_double(env, v, &d);
  /* Compare as doubles before converting: casting an out-of-range double
   * to int64 is undefined behaviour. 2^63 is exactly representable. */
  if (!isfinite(d) || d != trunc(d) || d < (double)min ||
      d >= 9223372036854775808.0 || d > (double)max) {
    throw_range(env,
                "The value of \"%s\" is out of range. It must be an integer "
                ">= %lld and <= %lld. Received %g",
                what, (long long)min, (long long)max, d);
    return false;
  }
  *out = (int64_t)d;
  return true;
}

bool arg_int(napi_env env, napi_value v, const char *what, int *out) {
  int64_t x;
  if (!arg_i64(env, v, what, INT32_MIN, INT32_MAX, &x)) return false;
  *out = (int)x;
  return true;
}

bool arg_fd(napi_env env, napi_value v, const char *what, int *out) {
  int64_t x;
  if (!arg_i64(env, v, what, 0, INT32_MAX, &x)) return false;
  *out = (int)x;
  return true;
}

bool arg_bool(napi_env env, napi_value v, const char *what, bool *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_boolean) {
    throw_type(env, "ERR_INVALID_ARG_TYPE",
               "The \"%s\" argument must be of type boolean", what);
    return false;
  }
  return napi_get_value_bool(env, v, out) == napi_ok;
}

bool arg_function(napi_env env, napi_value v, const char *what) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_function) {
    throw_type(env, "ERR_INVALID_ARG_TYPE",
               "The \"%s\" argument must be of type function", what);
    return false;
  }
  return true;
}
