#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "exports.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif
#ifndef RENAME_WHITEOUT
#define RENAME_WHITEOUT (1 << 2)
#endif
#ifndef UMOUNT_NOFOLLOW
#define UMOUNT_NOFOLLOW 8
#endif

#define FN(jsname, cfn) \
  { jsname, NULL, cfn, NULL, NULL, NULL, napi_enumerable, NULL }

static const struct {
  const char *name;
  int value;
} constants[] = {
    {"MNT_FORCE", MNT_FORCE},
    {"MNT_DETACH", MNT_DETACH},
    {"UMOUNT_NOFOLLOW", UMOUNT_NOFOLLOW},
    {"RENAME_NOREPLACE", RENAME_NOREPLACE},
    {"RENAME_EXCHANGE", RENAME_EXCHANGE},
    {"RENAME_WHITEOUT", RENAME_WHITEOUT},
    {"XATTR_CREATE", XATTR_CREATE},
    {"XATTR_REPLACE", XATTR_REPLACE},
    {"UTIME_NOW", UTIME_NOW},
    {"UTIME_OMIT", UTIME_OMIT},
    {"SEEK_SET", SEEK_SET},
    {"SEEK_CUR", SEEK_CUR},
    {"SEEK_END", SEEK_END},
    {"SEEK_DATA", SEEK_DATA},
    {"SEEK_HOLE", SEEK_HOLE},
    {"FALLOC_FL_KEEP_SIZE", FALLOC_FL_KEEP_SIZE},
    {"FALLOC_FL_PUNCH_HOLE", FALLOC_FL_PUNCH_HOLE},
    {"FALLOC_FL_ZERO_RANGE", FALLOC_FL_ZERO_RANGE},
};

static napi_value init(napi_env env, napi_value exports) {
  static const napi_property_descriptor fns[] = {
      FN("openDevice", js_open_device),
      FN("mount", js_mount),
      FN("umount", js_umount),
      FN("startReader", js_start_reader),
      FN("writev", js_writev),
      FN("backingOpen", js_backing_open),
      FN("backingClose", js_backing_close),
      FN("lstat", js_lstat),
      FN("fstat", js_fstat),
      FN("mknod", js_mknod),
      FN("renameat2", js_renameat2),
      FN("linkFollow", js_link_follow),
      FN("lgetxattr", js_lgetxattr),
      FN("lgetxattrOrErrno", js_lgetxattr_or_errno),
      FN("lsetxattr", js_lsetxattr),
      FN("llistxattr", js_llistxattr),
      FN("lremovexattr", js_lremovexattr),
      FN("fgetxattr", js_fgetxattr),
      FN("fsetxattr", js_fsetxattr),
      FN("flistxattr", js_flistxattr),
      FN("fremovexattr", js_fremovexattr),
      FN("utimens", js_utimens),
      FN("futimens", js_futimens),
      FN("lchown", js_lchown),
      FN("lseek", js_lseek),
      FN("fallocate", js_fallocate),
      FN("copyFileRange", js_copy_file_range),
      FN("ficlone", js_ficlone),
      FN("syncfs", js_syncfs),
      FN("tryLockExclusive", js_try_lock_exclusive),
      FN("copyData", js_copy_data),
      FN("copySmall", js_copy_small),
      FN("capSysAdmin", js_cap_sys_admin),
      FN("socketpair", js_socketpair),
      FN("recvFd", js_recv_fd),
      FN("lowMemory", js_low_memory),
  };
  if (napi_define_properties(env, exports, sizeof(fns) / sizeof(fns[0]),
                             fns) != napi_ok)
    return NULL;

  for (size_t i = 0; i < sizeof(constants) / sizeof(constants[0]); i++) {
    napi_value v;
    napi_property_descriptor d = {constants[i].name, NULL, NULL, NULL, NULL,
                                  NULL, napi_enumerable, NULL};
    if (napi_create_int32(env, constants[i].value, &v) != napi_ok) return NULL;
    d.value = v;
    if (napi_define_properties(env, exports, 1, &d) != napi_ok) return NULL;
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
