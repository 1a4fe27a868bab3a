// ThreadSanitizer annotations for the order gRPC guarantees but TSan cannot
// see: Debian's gRPC core is not built with TSan, so the hand-off between a
// reactor's Start*() call and the callback that completes it (run on
// another thread) is invisible to it, and every use of the reactor's
// buffers on both sides would be reported as a race. A reactor calls
// DST_TSAN_BEFORE_GRPC(this) before each Start*()/Finish() and
// DST_TSAN_AFTER_GRPC(this) first thing in each On*() callback. No-ops
// outside a TSan build (DST_SANITIZE=thread).
#ifndef DST_SERVICES_COMMON_TSAN_H_
#define DST_SERVICES_COMMON_TSAN_H_

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define DST_TSAN_BEFORE_GRPC(object) \
  __tsan_release(static_cast<void*>( \
      const_cast<char*>(reinterpret_cast<const char*>(object))))
#define DST_TSAN_AFTER_GRPC(object)  \
  __tsan_acquire(static_cast<void*>( \
      const_cast<char*>(reinterpret_cast<const char*>(object))))
#else
#define DST_TSAN_BEFORE_GRPC(object) ((void)0)
#define DST_TSAN_AFTER_GRPC(object) ((void)0)
#endif

#endif  // DST_SERVICES_COMMON_TSAN_H_
