#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/uio.h>
#include <unistd.h>

#include "args.h"
#include "errors.h"
#include "exports.h"

/* Debian 12's linux/fuse.h is 7.38; passthrough backing ids arrived in 7.40,
 * so the ABI is spelled out here. */
struct stratafs_fuse_backing_map {
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};
#define STRATAFS_FUSE_DEV_IOC_MAGIC 229
#define STRATAFS_FUSE_DEV_IOC_BACKING_OPEN \
  _IOW(STRATAFS_FUSE_DEV_IOC_MAGIC, 1, struct stratafs_fuse_backing_map)
#define STRATAFS_FUSE_DEV_IOC_BACKING_CLOSE \
  _IOW(STRATAFS_FUSE_DEV_IOC_MAGIC, 2, uint32_t)

/* A reply is a header plus a few body parts; 64 covers every opcode without
 * touching the heap, anything up to IOV_MAX still works. */
#define STACK_IOVECS 64

napi_value js_open_device(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return throw_errno(env, errno, "open", "/dev/fuse", NULL);
  napi_value r;
  NAPI_OK(env, napi_create_int32(env, fd, &r));
  return r;
}

/* Missing or undefined optional properties read as "not given". */
static bool opt_present(napi_env env, napi_value obj, const char *key,
                        napi_value *out) {
  napi_valuetype t;
  if (napi_get_named_property(env, obj, key, out) != napi_ok) return false;
  if (napi_typeof(env, *out, &t) != napi_ok) return false;
  return t != napi_undefined && t != napi_null;
}

static bool opt_u32(napi_env env, napi_value obj, const char *key,
                    bool required, uint32_t *out, bool *given) {
  napi_value v;
  int64_t x;
  *given = opt_present(env, obj, key, &v);
  if (!*given) {
    if (required)
      throw_type(env, "ERR_INVALID_ARG_TYPE",
                 "The \"opts.%s\" property must be of type number", key);
    return !required;
  }
  char what[64];
  snprintf(what, sizeof(what), "opts.%s", key);
  if (!arg_i64(env, v, what, 0, UINT32_MAX, &x)) return false;
  *out = (uint32_t)x;
  return true;
}

static bool opt_flag(napi_env env, napi_value obj, const char *key,
                     bool *out) {
  napi_value v;
  *out = false;
  if (!opt_present(env, obj, key, &v)) return true;
  char what[64];
  snprintf(what, sizeof(what), "opts.%s", key);
  return arg_bool(env, v, what, out);
}

static bool opt_str(napi_env env, napi_value obj, const char *key,
                    str_arg *out, bool *given) {
  napi_value v;
  *given = opt_present(env, obj, key, &v);
  if (!*given) return true;
  char what[64];
  snprintf(what, sizeof(what), "opts.%s", key);
  return arg_str(env, v, what, out);
}

napi_value js_mount(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  napi_valuetype t;
  if (!get_args(env, info, 3, argv) || !arg_fd(env, argv[0], "fd", &fd))
    return NULL;
  if (napi_typeof(env, argv[2], &t) != napi_ok || t != napi_object)
    return throw_type(env, "ERR_INVALID_ARG_TYPE",
                      "The \"opts\" argument must be of type object");

  uint32_t root_mode = 0, uid = 0, gid = 0, max_read = 0;
  bool given, has_max_read = false, has_fsname = false, has_subtype = false;
  bool allow_other, default_perms, ro, nosuid, nodev, noatime;
  if (!opt_u32(env, argv[2], "rootMode", true, &root_mode, &given) ||
      !opt_u32(env, argv[2], "uid", true, &uid, &given) ||
      !opt_u32(env, argv[2], "gid", true, &gid, &given) ||
      !opt_u32(env, argv[2], "maxRead", false, &max_read, &has_max_read) ||
      !opt_flag(env, argv[2], "allowOther", &allow_other) ||
      !opt_flag(env, argv[2], "defaultPermissions", &default_perms) ||
      !opt_flag(env, argv[2], "readOnly", &ro) ||
      !opt_flag(env, argv[2], "noSuid", &nosuid) ||
      !opt_flag(env, argv[2], "noDev", &nodev) ||
      !opt_flag(env, argv[2], "noAtime", &noatime))
    return NULL;

  str_arg target, fsname, subtype;
  fsname.s = fsname.inline_buf;
  subtype.s = subtype.inline_buf;
  if (!arg_str(env, argv[1], "target", &target)) return NULL;
  if (!opt_str(env, argv[2], "fsname", &fsname, &has_fsname) ||
      !opt_str(env, argv[2], "subtype", &subtype, &has_subtype)) {
    str_arg_free(&target);
    str_arg_free(&fsname);
    return NULL;
  }

  char data[256];
  int n = snprintf(data, sizeof(data),
                   "fd=%d,rootmode=%o,user_id=%u,group_id=%u%s%s", fd,
                   root_mode, uid, gid,
                   default_perms ? ",default_permissions" : "",
                   allow_other ? ",allow_other" : "");
  if (has_max_read)
    snprintf(data + n, sizeof(data) - n, ",max_read=%u", max_read);

  char *fstype = NULL;
  if (has_subtype && asprintf(&fstype, "fuse.%s", subtype.s) < 0)
    fstype = NULL;

  unsigned long flags = (ro ? MS_RDONLY : 0) | (nosuid ? MS_NOSUID : 0) |
                        (nodev ? MS_NODEV : 0) | (noatime ? MS_NOATIME : 0);
  int rc = -1, err = ENOMEM;
  if (!has_subtype || fstype) {
    rc = mount(has_fsname ? fsname.s : "stratafs", target.s,
               fstype ? fstype : "fuse", flags, data);
    err = errno;
  }
  napi_value result = NULL;
  if (rc < 0)
    throw_errno(env, err, "mount", target.s, NULL);
  else
    napi_get_undefined(env, &result);
  free(fstype);
  str_arg_free(&target);
  str_arg_free(&fsname);
  str_arg_free(&subtype);
  return result;
}

napi_value js_umount(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  str_arg target;
  int flags;
  if (!get_args(env, info, 2, argv) || !arg_int(env, argv[1], "flags", &flags) ||
      !arg_str(env, argv[0], "target", &target))
    return NULL;
  napi_value result = NULL;
  if (umount2(target.s, flags) < 0)
    throw_errno(env, errno, "umount2", target.s, NULL);
  else
    napi_get_undefined(env, &result);
  str_arg_free(&target);
  return result;
}

napi_value js_writev(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  bool is_array;
  uint32_t count;
  if (!get_args(env, info, 2, argv) || !arg_fd(env, argv[0], "fd", &fd))
    return NULL;
  if (napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array)
    return throw_type(env, "ERR_INVALID_ARG_TYPE",
                      "The \"bufs\" argument must be an array of Buffers");
  NAPI_OK(env, napi_get_array_length(env, argv[1], &count));
  if (count > IOV_MAX)
    return throw_range(env, "The \"bufs\" array may hold at most %d parts",
                       IOV_MAX);

  struct iovec stack_iov[STACK_IOVECS];
  struct iovec *iov = stack_iov;
  if (count > STACK_IOVECS && !(iov = malloc(count * sizeof(*iov)))) {
    napi_throw_error(env, NULL, "stratafs_native: out of memory");
    return NULL;
  }
  napi_value result = NULL;
  for (uint32_t i = 0; i < count; i++) {
    napi_value el;
    if (napi_get_element(env, argv[1], i, &el) != napi_ok) {
      throw_napi_failure(env, napi_generic_failure);
      goto out;
    }
    if (!arg_bytes(env, el, "bufs[i]", &iov[i].iov_base, &iov[i].iov_len))
      goto out;
  }
  ssize_t w;
  do {
    w = writev(fd, iov, (int)count);
  } while (w < 0 && errno == EINTR);
  if (w < 0)
    throw_errno(env, errno, "writev", NULL, NULL);
  else
    napi_create_int64(env, w, &result);
out:
  if (iov != stack_iov) free(iov);
  return result;
}

napi_value js_backing_open(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd, backing_fd;
  if (!get_args(env, info, 2, argv) || !arg_fd(env, argv[0], "fd", &fd) ||
      !arg_fd(env, argv[1], "backingFd", &backing_fd))
    return NULL;
  struct stratafs_fuse_backing_map map = {.fd = backing_fd};
  int id = ioctl(fd, STRATAFS_FUSE_DEV_IOC_BACKING_OPEN, &map);
  if (id < 0) return throw_errno(env, errno, "backing_open", NULL, NULL);
  napi_value r;
  NAPI_OK(env, napi_create_int32(env, id, &r));
  return r;
}

napi_value js_backing_close(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  int64_t id;
  if (!get_args(env, info, 2, argv) || !arg_fd(env, argv[0], "fd", &fd) ||
      !arg_i64(env, argv[1], "backingId", 0, UINT32_MAX, &id))
    return NULL;
  uint32_t backing_id = (uint32_t)id;
  if (ioctl(fd, STRATAFS_FUSE_DEV_IOC_BACKING_CLOSE, &backing_id) < 0)
    return throw_errno(env, errno, "backing_close", NULL, NULL);
  return NULL;
}
