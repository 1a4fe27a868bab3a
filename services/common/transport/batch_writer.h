// The write side of a transaction stream, either end (TransactionStream
// writes requests, ServerStream replies): one write in flight at a time,
// and what is queued meanwhile coalesced into the next one, up to a byte
// limit (each item counted as its data plus kBatchItemOverheadBytes; the
// first item always goes, however large).
//
// The stream keeps its own queue (replies waiting, or transactions kept
// for a resend) and passes two functions to draw from it: `peek` gives the
// data size of the next item (nullopt when none is left), `take` adds that
// item to the batch and removes it from the queue.
//
// A write asked for on a completion-loop thread (a reply's callback, a
// handler finishing at once) is deferred until that loop is idle
// (CompletionLoop::Defer), so that it carries what the loop's other events
// queue meanwhile; the stream's flush tag then comes back and it calls
// OnFlush. A write asked for on another thread starts at once.
//
// Not thread-safe: every call is made under the stream's lock, and the
// stream starts gRPC's Write of batch() after releasing it (the batch is
// the write's until WriteDone).
#ifndef DST_SERVICES_COMMON_TRANSPORT_BATCH_WRITER_H_
#define DST_SERVICES_COMMON_TRANSPORT_BATCH_WRITER_H_

#include <cstddef>
#include <optional>

#include "services/common/base/limits.h"
#include "services/common/rpc/completion_loop.h"
#include "services/common/transport/outgoing_batch.h"

namespace dst {

template <class Item>  // v1::Request or v1::Reply
class BatchWriter {
 public:
  // What the stream must do once it releases its lock. Both kDeferred and
  // kWrite hand a tag to gRPC or the loop: one more operation to count.
  enum class Next {
    kNothing,   // a write or a flush is pending, or nothing may be written
    kDeferred,  // the flush tag comes back when the loop is idle: OnFlush
    kWrite,     // write batch() now
  };

  // `flush_tag` is the stream's, deferred on a loop thread.
  BatchWriter(CompletionLoop::Tag* flush_tag, size_t max_batch_bytes)
      : flush_tag_(flush_tag), max_batch_bytes_(max_batch_bytes) {}

  // For a stream that learns its limit after it is made (a server stream,
  // when its call is admitted); before any write.
  void set_max_batch_bytes(size_t bytes) { max_batch_bytes_ = bytes; }

  // Something was queued or a write ended: starts the next write unless one
  // is in flight or deferred. `open`: the stream may write and items wait.
  template <class Peek, class Take>
  Next Request(bool open, Peek peek, Take take) {
    if (flush_pending_ || writing_ || !open) return Next::kNothing;
    if (CompletionLoop::Defer(flush_tag_)) {
      flush_pending_ = true;
      return Next::kDeferred;
    }
    return Fill(open, peek, take);
  }

  // The deferred flush came back: writes what is queued now.
  template <class Peek, class Take>
  Next OnFlush(bool open, Peek peek, Take take) {
    flush_pending_ = false;
    return Fill(open, peek, take);
  }

  // The write of batch() is over (either way).
  void WriteDone() {
    writing_ = false;
    batch_.Clear();
  }

  bool writing() const { return writing_; }
  // The batch being written; the write's until WriteDone.
  const OutgoingBatch<Item>& batch() const { return batch_; }

 private:
  template <class Peek, class Take>
  Next Fill(bool open, Peek peek, Take take) {
    if (writing_ || !open) return Next::kNothing;
    batch_.Clear();
    size_t bytes = 0;
    while (std::optional<size_t> data_bytes = peek()) {
      const size_t size = *data_bytes + kBatchItemOverheadBytes;
      if (batch_.size() > 0 && bytes + size > max_batch_bytes_) break;
      take(batch_);
      bytes += size;
    }
    if (batch_.size() == 0) return Next::kNothing;
    writing_ = true;
    return Next::kWrite;
  }

  CompletionLoop::Tag* const flush_tag_;
  size_t max_batch_bytes_;
  OutgoingBatch<Item> batch_;
  bool writing_ = false;
  bool flush_pending_ = false;
};

}  // namespace dst

#endif  // DST_SERVICES_COMMON_TRANSPORT_BATCH_WRITER_H_
