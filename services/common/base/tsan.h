// ThreadSanitizer annotations for the order gRPC guarantees but TSan cannot
// see: Debian's gRPC core is not built with TSan, so the hand-off between
// starting an operation with a tag and the loop thread that gets the tag
// back is invisible to it, and every use of the operation's buffers on
// both sides would be reported as a race. CompletionLoop::Hand(tag) runs
// DST_TSAN_BEFORE_GRPC(tag) as the operation starts, and the loop
// DST_TSAN_AFTER_GRPC(tag) before the tag's Proceed. The one other user:
// a payload handed to gRPC as a slice (outgoing_batch.cc), whose reference
// gRPC drops on a thread of its own. No-ops outside a TSan build
// (DST_SANITIZE=thread).
#ifndef DST_SERVICES_COMMON_BASE_TSAN_H_
#define DST_SERVICES_COMMON_BASE_TSAN_H_

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

#endif  // DST_SERVICES_COMMON_BASE_TSAN_H_
