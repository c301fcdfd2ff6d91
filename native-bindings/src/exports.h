#ifndef STRATAFS_EXPORTS_H
#define STRATAFS_EXPORTS_H

#include <node_api.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DECL(name) napi_value name(napi_env env, napi_callback_info info)

/* device.c */
DECL(js_open_device);
DECL(js_mount);
DECL(js_umount);
DECL(js_writev);
DECL(js_backing_open);
DECL(js_backing_close);
/* reader.c */
DECL(js_start_reader);
/* syscalls.c */
DECL(js_mknod);
DECL(js_renameat2);
DECL(js_link_follow);
DECL(js_utimens);
DECL(js_futimens);
DECL(js_lchown);
DECL(js_lseek);
DECL(js_fallocate);
DECL(js_copy_file_range);
DECL(js_ficlone);
DECL(js_syncfs);
DECL(js_try_lock_exclusive);
DECL(js_cap_sys_admin);
/* stat.c */
DECL(js_lstat);
DECL(js_fstat);
/* xattr.c */
DECL(js_lgetxattr);
DECL(js_lgetxattr_or_errno);
DECL(js_lsetxattr);
DECL(js_llistxattr);
DECL(js_lremovexattr);
DECL(js_fgetxattr);
DECL(js_fsetxattr);
DECL(js_flistxattr);
DECL(js_fremovexattr);
/* copy.c */
DECL(js_copy_data);
DECL(js_copy_small);
/* socket.c */
DECL(js_socketpair);
DECL(js_recv_fd);
/* memory.cc */
DECL(js_low_memory);

#undef DECL

#ifdef __cplusplus
}
#endif

#endif
