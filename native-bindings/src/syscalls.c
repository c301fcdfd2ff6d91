/* Path and fd syscalls Node's fs module does not expose (or only without
 * nanoseconds / nofollow / flags) but a union filesystem needs. */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "args.h"
#include "errors.h"
#include "exports.h"

#ifndef SYS_renameat2
#error "SYS_renameat2 is required"
#endif

/* glibc only gained the renameat2() wrapper in 2.28; the raw syscall works
 * everywhere. */
static int do_renameat2(const char *oldp, const char *newp, unsigned flags) {
  return (int)syscall(SYS_renameat2, AT_FDCWD, oldp, AT_FDCWD, newp, flags);
}

static napi_value undefined(napi_env env) {
  napi_value u = NULL;
  napi_get_undefined(env, &u);
  return u;
}

static napi_value number(napi_env env, int64_t v) {
  napi_value r;
  NAPI_OK(env, napi_create_int64(env, v, &r));
  return r;
}

napi_value js_mknod(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int64_t mode, major, minor;
  str_arg path;
  if (!get_args(env, info, 4, argv) ||
      !arg_i64(env, argv[1], "mode", 0, UINT32_MAX, &mode) ||
      !arg_i64(env, argv[2], "major", 0, UINT32_MAX, &major) ||
      !arg_i64(env, argv[3], "minor", 0, UINT32_MAX, &minor) ||
      !arg_str(env, argv[0], "path", &path))
    return NULL;
  napi_value r = NULL;
  if (mknod(path.s, (mode_t)mode,
            makedev((unsigned)major, (unsigned)minor)) < 0)
    throw_errno(env, errno, "mknod", path.s, NULL);
  else
    r = undefined(env);
  str_arg_free(&path);
  return r;
}

/* oldPath and newPath (argv[0], argv[1]) of a two-path call; false with an
 * exception pending. */
static bool arg_two_paths(napi_env env, napi_value *argv, str_arg *oldp, str_arg *newp) {
  if (!arg_str(env, argv[0], "oldPath", oldp)) return false;
  if (!arg_str(env, argv[1], "newPath", newp)) {
    str_arg_free(oldp);
    return false;
  }
  return true;
}

/* A two-path syscall's answer: undefined, or its errno thrown naming both paths. */
static napi_value two_path_result(napi_env env, int rc, const char *syscall, str_arg *oldp, str_arg *newp) {
  napi_value r = NULL;
  if (rc < 0)
    throw_errno(env, errno, syscall, oldp->s, newp->s);
  else
    r = undefined(env);
  str_arg_free(oldp);
  str_arg_free(newp);
  return r;
}

/* linkat(2) following a symlink in oldPath: how an O_TMPFILE file is given a name
 * through /proc/self/fd/N (link(2) would try to link the magic link itself). */
napi_value js_link_follow(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  str_arg oldp, newp;
  if (!get_args(env, info, 2, argv) || !arg_two_paths(env, argv, &oldp, &newp))
    return NULL;
  return two_path_result(env, linkat(AT_FDCWD, oldp.s, AT_FDCWD, newp.s, AT_SYMLINK_FOLLOW), "linkat", &oldp, &newp);
}

napi_value js_renameat2(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int64_t flags;
  str_arg oldp, newp;
  if (!get_args(env, info, 3, argv) ||
      !arg_i64(env, argv[2], "flags", 0, UINT32_MAX, &flags) ||
      !arg_two_paths(env, argv, &oldp, &newp))
    return NULL;
  return two_path_result(env, do_renameat2(oldp.s, newp.s, (unsigned)flags), "renameat2", &oldp, &newp);
}

/* Seconds are int64 (dates past 2038); nanoseconds may be UTIME_NOW or
 * UTIME_OMIT, which the kernel validates. */
static bool arg_times(napi_env env, napi_value *argv, struct timespec ts[2]) {
  int64_t as, an, ms, mn;
  if (!arg_i64(env, argv[0], "atimeSec", INT64_MIN, INT64_MAX, &as) ||
      !arg_i64(env, argv[1], "atimeNsec", 0, UINT32_MAX, &an) ||
      !arg_i64(env, argv[2], "mtimeSec", INT64_MIN, INT64_MAX, &ms) ||
      !arg_i64(env, argv[3], "mtimeNsec", 0, UINT32_MAX, &mn))
    return false;
  ts[0].tv_sec = (time_t)as;
  ts[0].tv_nsec = (long)an;
  ts[1].tv_sec = (time_t)ms;
  ts[1].tv_nsec = (long)mn;
  return true;
}

napi_value js_utimens(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  struct timespec ts[2];
  bool nofollow;
  str_arg path;
  if (!get_args(env, info, 6, argv) || !arg_times(env, argv + 1, ts) ||
      !arg_bool(env, argv[5], "nofollow", &nofollow) ||
      !arg_str(env, argv[0], "path", &path))
    return NULL;
  napi_value r = NULL;
  if (utimensat(AT_FDCWD, path.s, ts, nofollow ? AT_SYMLINK_NOFOLLOW : 0) < 0)
    throw_errno(env, errno, "utimensat", path.s, NULL);
  else
    r = undefined(env);
  str_arg_free(&path);
  return r;
}

napi_value js_futimens(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  struct timespec ts[2];
  int fd;
  if (!get_args(env, info, 5, argv) || !arg_fd(env, argv[0], "fd", &fd) ||
      !arg_times(env, argv + 1, ts))
    return NULL;
  if (futimens(fd, ts) < 0) return throw_errno(env, errno, "futimens", NULL, NULL);
  return undefined(env);
}

napi_value js_lchown(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int64_t uid, gid;
  str_arg path;
  /* -1 is the kernel's "leave unchanged"; it is also (uid_t)0xffffffff. */
  if (!get_args(env, info, 3, argv) ||
      !arg_i64(env, argv[1], "uid", -1, UINT32_MAX, &uid) ||
      !arg_i64(env, argv[2], "gid", -1, UINT32_MAX, &gid) ||
      !arg_str(env, argv[0], "path", &path))
    return NULL;
  napi_value r = NULL;
  if (fchownat(AT_FDCWD, path.s, (uid_t)uid, (gid_t)gid,
               AT_SYMLINK_NOFOLLOW) < 0)
    throw_errno(env, errno, "lchown", path.s, NULL);
  else
    r = undefined(env);
  str_arg_free(&path);
  return r;
}

napi_value js_lseek(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd, whence;
  int64_t off;
  if (!get_args(env, info, 3, argv) || !arg_fd(env, argv[0], "fd", &fd) ||
      !arg_i64(env, argv[1], "offset", INT64_MIN, INT64_MAX, &off) ||
      !arg_int(env, argv[2], "whence", &whence))
    return NULL;
  off_t r = lseek64(fd, (off_t)off, whence);
  if (r < 0) return throw_errno(env, errno, "lseek", NULL, NULL);
  return number(env, r);
}

napi_value js_fallocate(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int fd, mode;
  int64_t off, len;
  if (!get_args(env, info, 4, argv) || !arg_fd(env, argv[0], "fd", &fd) ||
      !arg_int(env, argv[1], "mode", &mode) ||
      !arg_i64(env, argv[2], "offset", 0, INT64_MAX, &off) ||
      !arg_i64(env, argv[3], "length", 0, INT64_MAX, &len))
    return NULL;
  int rc;
  do {
    rc = fallocate64(fd, mode, (off_t)off, (off_t)len);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) return throw_errno(env, errno, "fallocate", NULL, NULL);
  return undefined(env);
}

napi_value js_copy_file_range(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int fd_in, fd_out;
  int64_t off_in, off_out, len;
  if (!get_args(env, info, 5, argv) ||
      !arg_fd(env, argv[0], "fdIn", &fd_in) ||
      !arg_i64(env, argv[1], "offIn", 0, INT64_MAX, &off_in) ||
      !arg_fd(env, argv[2], "fdOut", &fd_out) ||
      !arg_i64(env, argv[3], "offOut", 0, INT64_MAX, &off_out) ||
      !arg_i64(env, argv[4], "len", 0, INT64_MAX, &len))
    return NULL;
  off64_t in = off_in, out = off_out;
  ssize_t n;
  do {
    n = copy_file_range(fd_in, &in, fd_out, &out, (size_t)len, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return throw_errno(env, errno, "copy_file_range", NULL, NULL);
  return number(env, n);
}

napi_value js_ficlone(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int dst, src;
  if (!get_args(env, info, 2, argv) || !arg_fd(env, argv[0], "destFd", &dst) ||
      !arg_fd(env, argv[1], "srcFd", &src))
    return NULL;
  if (ioctl(dst, FICLONE, src) < 0)
    return throw_errno(env, errno, "ficlone", NULL, NULL);
  return undefined(env);
}

/* Flushes the whole filesystem holding fd: a volatile union's unmount makes its upper dir
   whole with one call instead of an fsync per file it wrote. */
napi_value js_syncfs(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!get_args(env, info, 1, argv) || !arg_fd(env, argv[0], "fd", &fd))
    return NULL;
  if (syncfs(fd) < 0) return throw_errno(env, errno, "syncfs", NULL, NULL);
  return undefined(env);
}

/* flock(fd, LOCK_EX | LOCK_NB): true when taken, false when another open file
 * description holds a lock on the file. The kernel drops it when the holder dies, even
 * by kill -9, which a lock file with a pid in it cannot promise. */
napi_value js_try_lock_exclusive(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!get_args(env, info, 1, argv) || !arg_fd(env, argv[0], "fd", &fd))
    return NULL;
  int rc;
  do rc = flock(fd, LOCK_EX | LOCK_NB);
  while (rc < 0 && errno == EINTR);
  if (rc < 0 && errno != EWOULDBLOCK) return throw_errno(env, errno, "flock", NULL, NULL);
  napi_value r;
  NAPI_OK(env, napi_get_boolean(env, rc == 0, &r));
  return r;
}

napi_value js_cap_sys_admin(napi_env env, napi_callback_info info) {
  (void)info;
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {{0}};
  bool has = false;
  /* No libcap dependency: the raw syscall is one call and stable ABI. */
  if (syscall(SYS_capget, &hdr, data) == 0)
    has = (data[CAP_TO_INDEX(CAP_SYS_ADMIN)].effective &
           CAP_TO_MASK(CAP_SYS_ADMIN)) != 0;
  napi_value r;
  NAPI_OK(env, napi_get_boolean(env, has, &r));
  return r;
}
