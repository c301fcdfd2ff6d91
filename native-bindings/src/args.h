#ifndef STRATAFS_ARGS_H
#define STRATAFS_ARGS_H

#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A NUL-terminated byte string taken from a JS string (UTF-8) or a Buffer
 * (raw bytes, so names that are not valid UTF-8 survive). Short strings
 * live inline: most paths fit and syscalls here are on the FUSE hot path. */
typedef struct {
  char *s;
  size_t len;
  char inline_buf[256];
} str_arg;

/* All arg_* helpers throw a TypeError/RangeError and return false on bad
 * input; `what` names the argument in the message. */
bool get_args(napi_env env, napi_callback_info info, size_t want,
              napi_value *argv);
bool arg_str(napi_env env, napi_value v, const char *what, str_arg *out);
void str_arg_free(str_arg *a);
bool arg_bytes(napi_env env, napi_value v, const char *what, void **data,
               size_t *len);
bool arg_i64(napi_env env, napi_value v, const char *what, int64_t min,
             int64_t max, int64_t *out);
bool arg_int(napi_env env, napi_value v, const char *what, int *out);
bool arg_fd(napi_env env, napi_value v, const char *what, int *out);
bool arg_bool(napi_env env, napi_value v, const char *what, bool *out);
bool arg_function(napi_env env, napi_value v, const char *what);

#endif
