/* lstat/fstat for the FUSE hot path. Node's fs.lstatSync(p, {bigint: true})
 * builds a BigIntStats of 18 BigInts on every call, and turning it into a
 * fuse_attr costs more BigInt arithmetic; measured in the daemon, that was
 * half of a LOOKUP's JS time. Here the fields land in a caller-owned
 * Float64Array (every field but the inode number fits a double exactly), the
 * inode number comes back as one BigInt, and a failure comes back as a
 * positive errno number instead of a thrown Error, because ENOENT is an
 * ordinary answer on lookups (negative entries, union layer probes). */
#include <errno.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "args.h"
#include "errors.h"
#include "exports.h"

/* Slots of the Float64Array; src/fs/attr.ts reads them in this order. */
enum {
  SLOT_DEV, SLOT_SIZE, SLOT_BLOCKS, SLOT_ATIME, SLOT_ATIME_NS, SLOT_MTIME, SLOT_MTIME_NS, SLOT_CTIME,
  SLOT_CTIME_NS, SLOT_MODE, SLOT_NLINK, SLOT_UID, SLOT_GID, SLOT_RDEV_MAJOR, SLOT_RDEV_MINOR,
  SLOT_BLKSIZE, SLOT_SLOTS
};

static bool arg_slots(napi_env env, napi_value v, double **out) {
  napi_typedarray_type t;
  size_t n;
  void *p;
  if (napi_get_typedarray_info(env, v, &t, &n, &p, NULL, NULL) != napi_ok ||
      t != napi_float64_array || n < SLOT_SLOTS) {
    throw_type(env, "ERR_INVALID_ARG_TYPE",
               "The \"out\" argument must be a Float64Array of at least %d "
               "elements", SLOT_SLOTS);
    return false;
  }
  *out = p;
  return true;
}

static napi_value answer(napi_env env, int rc, const struct stat *st,
                         double *o) {
  napi_value r;
  if (rc < 0) {
    NAPI_OK(env, napi_create_int32(env, errno, &r));
    return r;
  }
  o[SLOT_DEV] = (double)st->st_dev;
  o[SLOT_SIZE] = (double)st->st_size;
  o[SLOT_BLOCKS] = (double)st->st_blocks;
  o[SLOT_ATIME] = (double)st->st_atim.tv_sec;
  o[SLOT_ATIME_NS] = (double)st->st_atim.tv_nsec;
  o[SLOT_MTIME] = (double)st->st_mtim.tv_sec;
  o[SLOT_MTIME_NS] = (double)st->st_mtim.tv_nsec;
  o[SLOT_CTIME] = (double)st->st_ctim.tv_sec;
  o[SLOT_CTIME_NS] = (double)st->st_ctim.tv_nsec;
  o[SLOT_MODE] = (double)st->st_mode;
  o[SLOT_NLINK] = (double)st->st_nlink;
  o[SLOT_UID] = (double)st->st_uid;
  o[SLOT_GID] = (double)st->st_gid;
  o[SLOT_RDEV_MAJOR] = (double)major(st->st_rdev);
  o[SLOT_RDEV_MINOR] = (double)minor(st->st_rdev);
  o[SLOT_BLKSIZE] = (double)st->st_blksize;
  NAPI_OK(env, napi_create_bigint_uint64(env, (uint64_t)st->st_ino, &r));
  return r;
}

/* lstat(path, out): the inode number as a BigInt, or errno as a number. */
napi_value js_lstat(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  double *o;
  str_arg path;
  if (!get_args(env, info, 2, argv) || !arg_slots(env, argv[1], &o) ||
      !arg_str(env, argv[0], "path", &path))
    return NULL;
  struct stat st;
  int rc = lstat(path.s, &st);
  str_arg_free(&path);
  return answer(env, rc, &st, o);
}

/* fstat(fd, out): as lstat. */
napi_value js_fstat(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  double *o;
  int fd;
  if (!get_args(env, info, 2, argv) || !arg_fd(env, argv[0], "fd", &fd) ||
      !arg_slots(env, argv[1], &o))
    return NULL;
  struct stat st;
  int rc = fstat(fd, &st);
  return answer(env, rc, &st, o);
}
