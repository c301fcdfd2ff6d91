/* Whole-file data copy for copy-up. It runs on the libuv thread pool:
 * copying a multi-GB layer file must not stall every other FUSE request,
 * which are all served on the main loop. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "errors.h"
#include "exports.h"

#define RW_BUF (1 << 20)
/* copy_file_range takes a size_t but the kernel caps one call anyway; keep
 * each call bounded so a huge extent still makes visible progress. */
#define CFR_CHUNK ((size_t)1 << 30)

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  int src, dst;
  /* outcome, filled on the worker thread */
  int err;
  const char *syscall;
  const char *method;
  uint64_t bytes;
  bool use_cfr;
  char *buf;
  /* The read/write fallback's buffer size: RW_BUF, allocated on first use, or
     the caller's own buffer (copySmall). */
  size_t buf_size;
} copy_job;

static bool fail(copy_job *j, const char *syscall) {
  j->err = errno;
  j->syscall = syscall;
  return false;
}

/* Errors meaning "copy_file_range cannot do this pair", not "I/O failed". */
static bool cfr_unsupported(int e) {
  return e == EXDEV || e == ENOSYS || e == EOPNOTSUPP || e == EINVAL;
}

static bool pwrite_all(int fd, const char *p, size_t n, off_t off) {
  while (n > 0) {
    ssize_t w = pwrite(fd, p, n, off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= (size_t)w;
    off += w;
  }
  return true;
}

/* Copies [off, end) at the same offsets in dst. *eof is set if the source
 * turned out shorter than when it was measured. */
static bool copy_range(copy_job *j, off_t off, off_t end, bool *eof) {
  while (off < end) {
    size_t want = (size_t)(end - off);
    if (j->use_cfr) {
      off64_t in = off, out = off;
      ssize_t n = copy_file_range(j->src, &in, j->dst, &out,
                                  want < CFR_CHUNK ? want : CFR_CHUNK, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (!cfr_unsupported(errno)) return fail(j, "copy_file_range");
        j->use_cfr = false;
        j->method = "readwrite";
        continue;
      }
      if (n == 0) {
        *eof = true;
        return true;
      }
      off += n;
      j->bytes += (uint64_t)n;
      continue;
    }
    if (!j->buf && !(j->buf = malloc(j->buf_size = RW_BUF))) {
      errno = ENOMEM;
      return fail(j, "malloc");
    }
    ssize_t n = pread(j->src, j->buf, want < j->buf_size ? want : j->buf_size, off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(j, "read");
    }
    if (n == 0) {
      *eof = true;
      return true;
    }
    if (!pwrite_all(j->dst, j->buf, (size_t)n, off)) return fail(j, "write");
    off += n;
    j->bytes += (uint64_t)n;
  }
  return true;
}

static bool copy_data(copy_job *j) {
  struct stat st;
  if (fstat(j->src, &st) < 0) return fail(j, "fstat");

  /* A reflink shares extents: instant and no extra space, when the
   * filesystem (btrfs, xfs) supports it. */
  if (ioctl(j->dst, FICLONE, j->src) == 0) {
    j->method = "clone";
    j->bytes = (uint64_t)st.st_size;
    return true;
  }

  /* Stale bytes in dst would otherwise show through the source's holes. Only when
   * there are any: on ext4 a truncate to size 0 marks the file for writeback at its
   * first close (auto_da_alloc), so closing a fresh copy-up started writing back all of
   * it, behind the landing fsync already doing so: close(2) stalled for seconds on a
   * 1 GiB copy. */
  struct stat dst_st;
  if (fstat(j->dst, &dst_st) < 0) return fail(j, "fstat");
  if (dst_st.st_size > 0 && ftruncate(j->dst, 0) < 0) return fail(j, "ftruncate");

  j->method = "copy_file_range";
  j->use_cfr = true;
  off_t size = st.st_size, off = 0;
  bool eof = false;
  while (off < size && !eof) {
    off_t data = lseek(j->src, off, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break; /* only a hole remains */
      return fail(j, "lseek");
    }
    if (data >= size) break;
    off_t hole = lseek(j->src, data, SEEK_HOLE);
    if (hole < 0) return fail(j, "lseek");
    if (hole > size) hole = size;
    if (!copy_range(j, data, hole, &eof)) return false;
    off = hole;
  }

  /* Extends over a trailing hole without allocating it (a truncate to the size the copy
   * already has would only cost a syscall). */
  if (fstat(j->dst, &dst_st) < 0) return fail(j, "fstat");
  if (dst_st.st_size != size && ftruncate(j->dst, size) < 0) return fail(j, "ftruncate");
  return true;
}

static void execute(napi_env env, void *data) {
  (void)env;
  copy_job *j = data;
  copy_data(j);
  free(j->buf);
  j->buf = NULL;
}

static napi_value make_result(napi_env env, copy_job *j) {
  napi_value obj, method, bytes;
  if (napi_create_object(env, &obj) != napi_ok ||
      napi_create_string_utf8(env, j->method, NAPI_AUTO_LENGTH, &method) !=
          napi_ok ||
      napi_create_int64(env, (int64_t)j->bytes, &bytes) != napi_ok ||
      napi_set_named_property(env, obj, "method", method) != napi_ok ||
      napi_set_named_property(env, obj, "bytes", bytes) != napi_ok)
    return NULL;
  return obj;
}

static void complete(napi_env env, napi_status status, void *data) {
  copy_job *j = data;
  napi_value v = NULL;
  if (status != napi_ok) {
    j->err = ECANCELED;
    j->syscall = "copyData";
  }
  if (j->err == 0 && (v = make_result(env, j)) != NULL) {
    napi_resolve_deferred(env, j->deferred, v);
  } else {
    if (j->err)
      v = errno_error(env, j->err, j->syscall, NULL, NULL);
    if (!v) {
      napi_value msg;
      napi_create_string_utf8(env, "stratafs_native: copyData failed",
                              NAPI_AUTO_LENGTH, &msg);
      napi_create_error(env, NULL, msg, &v);
    }
    napi_reject_deferred(env, j->deferred, v);
  }
  napi_delete_async_work(env, j->work);
  free(j);
}

napi_value js_copy_data(napi_env env, napi_callback_info info) {
  napi_value argv[2], promise, name;
  int src, dst;
  if (!get_args(env, info, 2, argv) || !arg_fd(env, argv[0], "srcFd", &src) ||
      !arg_fd(env, argv[1], "dstFd", &dst))
    return NULL;
  copy_job *j = calloc(1, sizeof(*j));
  if (!j) {
    napi_throw_error(env, NULL, "stratafs_native: out of memory");
    return NULL;
  }
  j->src = src;
  j->dst = dst;
  if (napi_create_promise(env, &j->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "stratafs:copyData", NAPI_AUTO_LENGTH,
                              &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, execute, complete, j,
                             &j->work) != napi_ok) {
    free(j);
    return throw_napi_failure(env, napi_generic_failure);
  }
  if (napi_queue_async_work(env, j->work) != napi_ok) {
    napi_delete_async_work(env, j->work);
    free(j);
    return throw_napi_failure(env, napi_generic_failure);
  }
  return promise;
}

/* A small file's data (the first `len` bytes, at the same offsets), copied on
 * the calling thread: for a few KiB the thread-pool round trip of copyData
 * costs more than the copy. copy_file_range when `tryRange` (source and
 * destination on one filesystem: across two, ext4 and xfs refuse with EXDEV),
 * else read/write through a buffer kept for the purpose: a failed attempt
 * thrown to JavaScript and caught there cost more than the copy itself.
 * Holes are not kept: at this size they do not matter. Returns the bytes
 * copied (fewer if the source is shorter). */
napi_value js_copy_small(napi_env env, napi_callback_info info) {
  static char small_buf[1 << 16]; /* the main thread is the only caller */
  napi_value argv[4];
  int src, dst;
  int64_t len;
  bool try_range;
  if (!get_args(env, info, 4, argv) || !arg_fd(env, argv[0], "srcFd", &src) ||
      !arg_fd(env, argv[1], "dstFd", &dst) ||
      !arg_i64(env, argv[2], "len", 0, INT64_MAX, &len) ||
      !arg_bool(env, argv[3], "tryRange", &try_range))
    return NULL;
  copy_job j = {.src = src, .dst = dst, .use_cfr = try_range,
                .buf = small_buf, .buf_size = sizeof small_buf};
  bool eof = false;
  if (!copy_range(&j, 0, (off_t)len, &eof))
    return throw_errno(env, j.err, j.syscall, NULL, NULL);
  napi_value out;
  napi_create_double(env, (double)j.bytes, &out);
  return out;
}
