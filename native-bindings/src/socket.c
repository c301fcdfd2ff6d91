/* fd passing over a unix socketpair: how fusermount3 hands an unprivileged
 * process the /dev/fuse fd it opened and mounted (libfuse's
 * fuse_mount_fusermount / receive_fd). Node has no SCM_RIGHTS support. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "args.h"
#include "errors.h"
#include "exports.h"

/* Both ends are close-on-exec so that neither leaks into unrelated children.
 * Handing one to a child still works: spawn()'s stdio mapping dup2()s it into
 * the child's slot, and dup2 never copies FD_CLOEXEC. */
napi_value js_socketpair(napi_env env, napi_callback_info info) {
  (void)info;
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
    return throw_errno(env, errno, "socketpair", NULL, NULL);
  napi_value arr, a, b;
  if (napi_create_array_with_length(env, 2, &arr) != napi_ok ||
      napi_create_int32(env, fds[0], &a) != napi_ok ||
      napi_create_int32(env, fds[1], &b) != napi_ok ||
      napi_set_element(env, arr, 0, a) != napi_ok ||
      napi_set_element(env, arr, 1, b) != napi_ok) {
    close(fds[0]);
    close(fds[1]);
    return throw_napi_failure(env, napi_generic_failure);
  }
  return arr;
}

/* Same shape as errno_error(), but with a message that says what went wrong
 * in protocol terms: "protocol error" alone would not tell the caller that
 * the peer simply sent no fd. */
static napi_value throw_proto(napi_env env, const char *why) {
  char msg[256];
  snprintf(msg, sizeof(msg), "EPROTO: protocol error, recvmsg: %s", why);
  napi_value code, text, err, errno_v, syscall;
  if (napi_create_string_utf8(env, "EPROTO", NAPI_AUTO_LENGTH, &code) !=
          napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text) != napi_ok ||
      napi_create_error(env, code, text, &err) != napi_ok ||
      napi_create_int32(env, -EPROTO, &errno_v) != napi_ok ||
      napi_set_named_property(env, err, "errno", errno_v) != napi_ok ||
      napi_create_string_utf8(env, "recvmsg", NAPI_AUTO_LENGTH, &syscall) !=
          napi_ok ||
      napi_set_named_property(env, err, "syscall", syscall) != napi_ok)
    return throw_napi_failure(env, napi_generic_failure);
  napi_throw(env, err);
  return NULL;
}

/* The first fd of the first SCM_RIGHTS message, or -1. Any further fds are
 * closed: the protocol sends exactly one, and extras would leak. */
static int take_fd(struct msghdr *msg) {
  int fd = -1;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n; i++) {
      int x;
      memcpy(&x, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (fd < 0)
        fd = x;
      else
        close(x);
    }
  }
  return fd;
}

/* Blocks until one message or EOF arrives, like libfuse's receive_fd: the
 * caller closes its copy of the peer end first, so a peer that exits without
 * sending gives EOF instead of a hang. */
napi_value js_recv_fd(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc = 2;
  int sock;
  bool nonblock = false;
  NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1)
    return throw_type(env, "ERR_MISSING_ARGS",
                      "The \"sockFd\" argument must be specified");
  if (!arg_fd(env, argv[0], "sockFd", &sock)) return NULL;
  if (argc > 1) {
    napi_valuetype t;
    NAPI_OK(env, napi_typeof(env, argv[1], &t));
    if (t != napi_undefined && !arg_bool(env, argv[1], "nonBlock", &nonblock))
      return NULL;
  }

  /* Room for a few fds so a misbehaving peer's extras are received (and
   * closed) rather than silently dropped with MSG_CTRUNC. */
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(4 * sizeof(int))];
  } ctl;
  char byte;
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  struct msghdr msg = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = ctl.buf,
                       .msg_controllen = sizeof(ctl.buf)};
  ssize_t n;
  do {
    /* MSG_CMSG_CLOEXEC: the fd must not leak into children we spawn later,
     * and setting it afterwards would race with a concurrent fork. */
    n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return throw_errno(env, errno, "recvmsg", NULL, NULL);

  int fd = take_fd(&msg);
  if (fd < 0)
    return throw_proto(env, n == 0 ? "the peer closed the socket without "
                                     "sending a file descriptor"
                                   : "a message arrived without a file "
                                     "descriptor");
  if (nonblock) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
      int e = errno;
      close(fd);
      return throw_errno(env, e, "fcntl", NULL, NULL);
    }
  }
  napi_value r;
  if (napi_create_int32(env, fd, &r) != napi_ok) {
    close(fd);
    return throw_napi_failure(env, napi_generic_failure);
  }
  return r;
}
