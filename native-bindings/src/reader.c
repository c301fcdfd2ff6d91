/* The /dev/fuse reader runs on Node's own libuv loop rather than a thread:
 * requests are handled in JS on that loop anyway, so a thread would only add
 * a hand-off and locking. A batch per wakeup amortises the JS entry cost. */
#include <errno.h>
#include <time.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>

#include "args.h"
#include "errors.h"
#include "exports.h"

/* Bounded so one busy mount cannot starve other I/O on the loop; epoll is
 * level-triggered, so whatever is left wakes us again next iteration. */
#define MAX_BATCH 256
#define MIN_BUF 8192 /* FUSE_MIN_READ_BUFFER: the kernel rejects less */
/* However busy the device, return to the loop this often so timers, signals and
 * thread-pool completions (fsync, copy-up) are not starved by the spin below. */
#define MAX_SPIN_TOTAL_NS 2000000ULL

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context async_ctx;
  /* Held from start until the uv handle has closed, so that a worker's
   * teardown waits for our close callback: the addon's code may be unloaded
   * right after, and a close callback run later would jump into nothing. */
  napi_async_cleanup_hook_handle cleanup;
  char *buf;
  size_t buf_size;
  int fd;
  /* Busy-poll window after a batch; 0 = sleep in epoll right away. */
  uint64_t spin_ns;
  /* Freed when both the uv handle is closed and the JS stop() function is
   * collected, since either may outlive the other. */
  int owners;
  bool stopped;
  bool in_callback;
  bool js_released;
} reader_t;

static void reader_unref(reader_t *r) {
  if (--r->owners == 0) {
    free(r->buf);
    free(r);
  }
}

static void on_closed(uv_handle_t *h) {
  reader_t *r = h->data;
  /* Unregisters the hook, or, if teardown already ran it, reports it done. */
  if (r->cleanup) napi_remove_async_cleanup_hook(r->cleanup);
  r->cleanup = NULL;
  reader_unref(r);
}

static void on_stop_fn_collected(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  reader_unref(data);
}

/* Drop the JS function and async context; deferred while onBatch is on the
 * stack, because stop() is often called from inside it. */
static void release_js(reader_t *r) {
  if (r->js_released) return;
  r->js_released = true;
  napi_delete_reference(r->env, r->callback);
  napi_async_destroy(r->env, r->async_ctx);
}

static void stop_polling(reader_t *r) {
  if (r->stopped) return;
  r->stopped = true;
  uv_poll_stop(&r->poll);
  uv_close((uv_handle_t *)&r->poll, on_closed);
}

static void on_env_teardown(napi_async_cleanup_hook_handle handle, void *data) {
  (void)handle;
  reader_t *r = data;
  /* JS can no longer run; N-API frees the reference and context itself. */
  r->js_released = true;
  stop_polling(r); /* no-op if a close is already pending */
}

static void stop_reader(reader_t *r) {
  if (r->stopped) return;
  stop_polling(r);
  if (!r->in_callback) release_js(r);
}

static void call_js(reader_t *r, size_t argc, napi_value *argv) {
  napi_env env = r->env;
  napi_value fn, recv;
  if (napi_get_reference_value(env, r->callback, &fn) != napi_ok || !fn)
    return;
  /* make_callback insists on an object receiver (undefined is a TypeError),
   * so pass globalThis, as Node's own MakeCallback users do. */
  if (napi_get_global(env, &recv) != napi_ok) return;
  /* make_callback (not call_function) so the nextTick queue and promise
   * microtasks drain afterwards, as after any libuv callback. */
  napi_make_callback(env, r->async_ctx, recv, fn, argc, argv, NULL);
  /* Nothing up the stack can catch a throw from onBatch; report it as
   * uncaught, as Node does for any callback fired from the event loop. */
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
    napi_value exc;
    if (napi_get_and_clear_last_exception(env, &exc) == napi_ok)
      napi_fatal_exception(env, exc);
  }
}

static void deliver_end(reader_t *r, int err, const char *syscall) {
  napi_value argv[2];
  size_t argc = 1;
  stop_reader(r);
  napi_get_null(r->env, &argv[0]);
  if (err != ENODEV) {
    argv[1] = errno_error(r->env, err, syscall, NULL, NULL);
    if (argv[1]) argc = 2;
  }
  call_js(r, argc, argv);
}

/* Outcome of one drain: how the read loop stopped. */
enum { DRAINED, BATCH_FULL, ENDED };

static int read_batch(reader_t *r, int *end_err, uint32_t *count) {
  napi_env env = r->env;
  napi_value batch = NULL;
  uint32_t n = 0;
  int outcome = BATCH_FULL;

  while (n < MAX_BATCH) {
    ssize_t len = read(r->fd, r->buf, r->buf_size);
    if (len < 0) {
      int e = errno;
      /* ENOENT: the request was interrupted and withdrawn before we got it. */
      if (e == EINTR || e == ENOENT) continue;
      if (e == EAGAIN) {
        outcome = DRAINED;
        break;
      }
      *end_err = e;
      outcome = ENDED;
      break;
    }
    if (len == 0) { /* EOF: not expected from /dev/fuse; treat as gone */
      *end_err = ENODEV;
      outcome = ENDED;
      break;
    }
    napi_value msg;
    if (!batch && napi_create_array(env, &batch) != napi_ok) break;
    if (napi_create_buffer_copy(env, (size_t)len, r->buf, NULL, &msg) !=
            napi_ok ||
        napi_set_element(env, batch, n, msg) != napi_ok)
      break;
    n++;
  }

  *count = n;
  if (n > 0) call_js(r, 1, &batch);
  return outcome;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* One batch inside its own handle scope, so a long spin does not pile up
 * handles until the outer callback returns. */
static int scoped_batch(reader_t *r, int *end_err, uint32_t *count) {
  napi_handle_scope scope;
  *count = 0;
  if (napi_open_handle_scope(r->env, &scope) != napi_ok) return DRAINED;
  int outcome = read_batch(r, end_err, count);
  napi_close_handle_scope(r->env, scope);
  return outcome;
}

static void on_poll(uv_poll_t *h, int status, int events) {
  (void)events;
  reader_t *r = h->data;
  if (r->stopped) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(r->env, &scope) != napi_ok) return;
  r->in_callback = true;

  /* On EPOLLERR libuv reports UV_EBADF and stops the watcher. /dev/fuse
   * raises EPOLLERR once the connection is gone, so read anyway: queued
   * requests still arrive, and read() tells ENODEV (unmounted) apart from
   * a real failure. */
  int end_err = 0;
  uint32_t n;
  int outcome = scoped_batch(r, &end_err, &n);

  /* A process that stats or creates file after file sends its next request a
   * few microseconds after our reply. Sleeping in epoll between them costs a
   * wake-up per request (tens of microseconds on a VM), more than the work, so
   * keep reading for a short window and extend it while requests keep coming. */
  if (r->spin_ns && outcome == DRAINED && status >= 0) {
    uint64_t start = now_ns();
    uint64_t deadline = start + r->spin_ns;
    while (!r->stopped) {
      outcome = scoped_batch(r, &end_err, &n);
      if (outcome == ENDED) break;
      uint64_t t = now_ns();
      if (n > 0) deadline = t + r->spin_ns;
      if (t >= deadline || t - start >= MAX_SPIN_TOTAL_NS) break;
    }
  }

  if (!r->stopped) {
    if (outcome == ENDED)
      deliver_end(r, end_err, "read");
    else if (status < 0 && outcome == DRAINED)
      deliver_end(r, -status, "poll");
    else if (status < 0) {
      int rc = uv_poll_start(&r->poll, UV_READABLE, on_poll);
      if (rc < 0) deliver_end(r, -rc, "uv_poll_start");
    }
  }

  r->in_callback = false;
  if (r->stopped) release_js(r);
  napi_close_handle_scope(r->env, scope);
}

static napi_value js_stop(napi_env env, napi_callback_info info) {
  reader_t *r;
  if (napi_get_cb_info(env, info, NULL, NULL, NULL, (void **)&r) != napi_ok)
    return NULL;
  stop_reader(r);
  return NULL;
}

napi_value js_start_reader(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int fd;
  int64_t buf_size;
  int64_t spin_us = 0;
  size_t argc = 4;
  /* Missing trailing arguments come back as undefined; spinMicros is optional. */
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (!get_args(env, info, 3, argv) || !arg_fd(env, argv[0], "fd", &fd) ||
      !arg_i64(env, argv[1], "bufSize", MIN_BUF, 1 << 30, &buf_size) ||
      !arg_function(env, argv[2], "onBatch"))
    return NULL;
  napi_valuetype t;
  if (napi_typeof(env, argv[3], &t) != napi_ok) return NULL;
  if (t != napi_undefined &&
      !arg_i64(env, argv[3], "spinMicros", 0, 1000000, &spin_us))
    return NULL;

  uv_loop_t *loop;
  NAPI_OK(env, napi_get_uv_event_loop(env, &loop));

  reader_t *r = calloc(1, sizeof(*r));
  if (r) r->buf = malloc((size_t)buf_size);
  if (!r || !r->buf) {
    free(r);
    napi_throw_error(env, NULL, "stratafs_native: out of memory");
    return NULL;
  }
  r->env = env;
  r->fd = fd;
  r->buf_size = (size_t)buf_size;
  r->spin_ns = (uint64_t)spin_us * 1000ULL;
  r->poll.data = r;

  int rc = uv_poll_init(loop, &r->poll, fd);
  if (rc < 0) {
    free(r->buf);
    free(r);
    return throw_errno(env, -rc, "uv_poll_init", NULL, NULL);
  }
  /* From here the handle is registered with the loop and may only be
   * released through uv_close. */
  r->owners = 1;

  napi_value name, handle, stop_fn;
  if (napi_create_string_utf8(env, "stratafs:FuseReader", NAPI_AUTO_LENGTH,
                              &name) != napi_ok ||
      napi_async_init(env, NULL, name, &r->async_ctx) != napi_ok)
    goto fail_handle;
  if (napi_create_reference(env, argv[2], 1, &r->callback) != napi_ok) {
    napi_async_destroy(env, r->async_ctx);
    goto fail_handle;
  }
  if (napi_create_object(env, &handle) != napi_ok ||
      napi_create_function(env, "stop", NAPI_AUTO_LENGTH, js_stop, r,
                           &stop_fn) != napi_ok ||
      napi_add_finalizer(env, stop_fn, r, on_stop_fn_collected, NULL,
                         NULL) != napi_ok)
    goto fail_js;
  r->owners = 2;
  if (napi_set_named_property(env, handle, "stop", stop_fn) != napi_ok ||
      napi_add_async_cleanup_hook(env, on_env_teardown, r, &r->cleanup) !=
          napi_ok) {
    r->cleanup = NULL;
    stop_reader(r);
    return throw_napi_failure(env, napi_generic_failure);
  }

  rc = uv_poll_start(&r->poll, UV_READABLE, on_poll);
  if (rc < 0) {
    stop_reader(r);
    return throw_errno(env, -rc, "uv_poll_start", NULL, NULL);
  }
  return handle;

fail_js:
  release_js(r);
fail_handle:
  r->stopped = true;
  r->js_released = true;
  uv_close((uv_handle_t *)&r->poll, on_closed);
  return throw_napi_failure(env, napi_generic_failure);
}
