// Giving memory back while the daemon is idle. The one C++ file of the addon: V8's memory
// reduction is reachable only through its C++ API, not through Node-API or JavaScript
// (a forced gc() keeps the young generation at the size a busy spell grew it to).
#include <malloc.h>
#include <v8.h>

#include "exports.h"

// A full, memory-reducing collection: V8 shrinks the young generation back to its
// initial size and returns freed pages (a daemon after a walk of 12,500 entries: 67 ->
// 35 MiB of anonymous memory). Then glibc returns what freed heap it can.
napi_value js_low_memory(napi_env env, napi_callback_info info) {
  (void)env;
  (void)info;
  v8::Isolate *isolate = v8::Isolate::GetCurrent();
  if (isolate) isolate->LowMemoryNotification();
  malloc_trim(0);
  return nullptr;
}
