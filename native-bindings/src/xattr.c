/* Extended attributes on a path (never following symlinks: a union fs
 * copies the link itself) or on an open fd. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "args.h"
#include "errors.h"
#include "exports.h"

/* Most values and name lists fit; reading straight into this saves the
 * size-probe syscall on the common path. */
#define FIRST_TRY 4096
/* A value can change size between probe and read; give up eventually. */
#define MAX_RETRIES 8

typedef struct {
  const char *path; /* NULL: use fd */
  int fd;
} target_t;

static ssize_t t_get(const target_t *t, const char *name, void *buf,
                     size_t n) {
  return t->path ? lgetxattr(t->path, name, buf, n)
                 : fgetxattr(t->fd, name, buf, n);
}

static ssize_t t_list(const target_t *t, const char *name, void *buf,
                      size_t n) {
  (void)name;
  return t->path ? llistxattr(t->path, buf, n) : flistxattr(t->fd, buf, n);
}

typedef ssize_t (*reader_fn)(const target_t *, const char *, void *, size_t);

/* Reads a variable-size result: first into a stack buffer, then, on ERANGE,
 * probes the size and retries with a heap buffer. On success *out is either
 * `stack` or a malloc'd block the caller frees. Returns -1 with errno set. */
static ssize_t read_sized(reader_fn fn, const target_t *t, const char *name,
                          char *stack, char **out) {
  ssize_t n = fn(t, name, stack, FIRST_TRY);
  *out = stack;
  if (n >= 0 || errno != ERANGE) return n;
  for (int i = 0; i < MAX_RETRIES; i++) {
    ssize_t size = fn(t, name, NULL, 0);
    if (size < 0) return -1;
    /* Never a read of size 0: that is a size query again, whose answer (the
     * value may have grown meanwhile) would be taken as bytes read. */
    size_t cap = size ? (size_t)size : 1;
    char *heap = malloc(cap);
    if (!heap) {
      errno = ENOMEM;
      return -1;
    }
    n = fn(t, name, heap, cap);
    if (n >= 0) {
      *out = heap;
      return n;
    }
    int err = errno;
    free(heap);
    errno = err;
    if (err != ERANGE) return -1;
  }
  errno = ERANGE;
  return -1;
}

static bool get_target(napi_env env, napi_value v, bool by_fd, target_t *t,
                       str_arg *path) {
  path->s = path->inline_buf;
  t->path = NULL;
  t->fd = -1;
  if (by_fd) return arg_fd(env, v, "fd", &t->fd);
  if (!arg_str(env, v, "path", path)) return false;
  t->path = path->s;
  return true;
}

/* or_errno: a failure is returned as its errno (a number) instead of thrown:
 * "no such attribute" is an ordinary answer on hot paths, and building a JS
 * error for it costs more than the syscall. */
static napi_value do_get(napi_env env, napi_callback_info info, bool by_fd,
                         bool or_errno) {
  napi_value argv[2], r = NULL;
  target_t t;
  str_arg path, name;
  if (!get_args(env, info, 2, argv) ||
      !arg_str(env, argv[1], "name", &name))
    return NULL;
  if (!get_target(env, argv[0], by_fd, &t, &path)) {
    str_arg_free(&name);
    return NULL;
  }
  char stack[FIRST_TRY], *data;
  ssize_t n = read_sized(t_get, &t, name.s, stack, &data);
  if (n < 0 && or_errno) {
    if (napi_create_int32(env, errno, &r) != napi_ok)
      r = throw_napi_failure(env, napi_generic_failure);
  } else if (n < 0)
    throw_errno(env, errno, by_fd ? "fgetxattr" : "lgetxattr", t.path, NULL);
  else if (napi_create_buffer_copy(env, (size_t)n, data, NULL, &r) != napi_ok)
    r = throw_napi_failure(env, napi_generic_failure);
  if (n >= 0 && data != stack) free(data);
  str_arg_free(&path);
  str_arg_free(&name);
  return r;
}

static napi_value do_list(napi_env env, napi_callback_info info, bool by_fd) {
  napi_value argv[1], r = NULL;
  target_t t;
  str_arg path;
  if (!get_args(env, info, 1, argv) ||
      !get_target(env, argv[0], by_fd, &t, &path))
    return NULL;
  char stack[FIRST_TRY], *data;
  ssize_t n = read_sized(t_list, &t, NULL, stack, &data);
  if (n < 0) {
    throw_errno(env, errno, by_fd ? "flistxattr" : "llistxattr", t.path, NULL);
    goto out;
  }
  if (napi_create_array(env, &r) != napi_ok) goto napi_fail;
  uint32_t idx = 0;
  for (ssize_t off = 0; off < n;) {
    size_t len = strnlen(data + off, (size_t)(n - off));
    napi_value s;
    if (len > 0) {
      if (napi_create_string_utf8(env, data + off, len, &s) != napi_ok ||
          napi_set_element(env, r, idx++, s) != napi_ok)
        goto napi_fail;
    }
    off += (ssize_t)len + 1;
  }
  goto out;
napi_fail:
  r = throw_napi_failure(env, napi_generic_failure);
out:
  if (n >= 0 && data != stack) free(data);
  str_arg_free(&path);
  return r;
}

static napi_value do_set(napi_env env, napi_callback_info info, bool by_fd) {
  napi_value argv[4], r = NULL;
  target_t t;
  str_arg path, name;
  void *value;
  size_t len;
  int flags;
  if (!get_args(env, info, 4, argv) ||
      !arg_bytes(env, argv[2], "value", &value, &len) ||
      !arg_int(env, argv[3], "flags", &flags) ||
      !arg_str(env, argv[1], "name", &name))
    return NULL;
  if (!get_target(env, argv[0], by_fd, &t, &path)) {
    str_arg_free(&name);
    return NULL;
  }
  int rc = t.path ? lsetxattr(t.path, name.s, value, len, flags)
                  : fsetxattr(t.fd, name.s, value, len, flags);
  if (rc < 0)
    throw_errno(env, errno, by_fd ? "fsetxattr" : "lsetxattr", t.path, NULL);
  else
    napi_get_undefined(env, &r);
  str_arg_free(&path);
  str_arg_free(&name);
  return r;
}

static napi_value do_remove(napi_env env, napi_callback_info info,
                            bool by_fd) {
  napi_value argv[2], r = NULL;
  target_t t;
  str_arg path, name;
  if (!get_args(env, info, 2, argv) ||
      !arg_str(env, argv[1], "name", &name))
    return NULL;
  if (!get_target(env, argv[0], by_fd, &t, &path)) {
    str_arg_free(&name);
    return NULL;
  }
  int rc = t.path ? lremovexattr(t.path, name.s) : fremovexattr(t.fd, name.s);
  if (rc < 0)
    throw_errno(env, errno, by_fd ? "fremovexattr" : "lremovexattr", t.path,
                NULL);
  else
    napi_get_undefined(env, &r);
  str_arg_free(&path);
  str_arg_free(&name);
  return r;
}

napi_value js_lgetxattr(napi_env env, napi_callback_info info) {
  return do_get(env, info, false, false);
}
napi_value js_lgetxattr_or_errno(napi_env env, napi_callback_info info) {
  return do_get(env, info, false, true);
}
napi_value js_fgetxattr(napi_env env, napi_callback_info info) {
  return do_get(env, info, true, false);
}
napi_value js_llistxattr(napi_env env, napi_callback_info info) {
  return do_list(env, info, false);
}
napi_value js_flistxattr(napi_env env, napi_callback_info info) {
  return do_list(env, info, true);
}
napi_value js_lsetxattr(napi_env env, napi_callback_info info) {
  return do_set(env, info, false);
}
napi_value js_fsetxattr(napi_env env, napi_callback_info info) {
  return do_set(env, info, true);
}
napi_value js_lremovexattr(napi_env env, napi_callback_info info) {
  return do_remove(env, info, false);
}
napi_value js_fremovexattr(napi_env env, napi_callback_info info) {
  return do_remove(env, info, true);
}
