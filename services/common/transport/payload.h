// The data a transaction carries (a write's bytes, a read's reply), kept
// apart from its message so that it crosses dst without being copied.
// Received, a large payload is the gRPC slices its bytes arrived in
// (incoming_batch.h); sent, it goes to gRPC as slices that share its bytes
// (outgoing_batch.h). In between, the gateway checks its digest and hands
// it on, an exporter reads into one and writes one with pwritev, and the
// plugin copies it into nbdkit's buffer: the one copy a read needs there.
//
// Inside dst's engine a transaction's data is its Payload; the message's
// own `data` field stays empty. On the wire the payload is that field.
//
// Immutable once made, and cheap to copy: copies share the bytes, which
// the last one frees. Thread-safe for any number of readers.
#ifndef DST_SERVICES_COMMON_TRANSPORT_PAYLOAD_H_
#define DST_SERVICES_COMMON_TRANSPORT_PAYLOAD_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/support/slice.h>

#include "absl/strings/string_view.h"

namespace dst {

// Payloads of this size and more travel as slices of their own, sent and
// received; smaller ones are copied beside their message's header (a
// slice each would cost more than the copy, and a small payload must not
// hold on to a whole receive buffer).
inline constexpr size_t kSlicedPayloadBytes = size_t{64} << 10;

class Payload {
 public:
  Payload() = default;  // no bytes
  // Takes `bytes` (moved, not copied).
  explicit Payload(std::string bytes);
  // Copies `size` bytes from `data`.
  static Payload Copy(const void* data, size_t size);
  // `size` bytes left uninitialized for the caller to fill, through
  // `*bytes`, before the payload is copied or shared.
  static Payload Uninitialized(size_t size, char** bytes);
  // Shares `slices`, whose bytes in order are the payload.
  static Payload Share(std::vector<grpc::Slice> slices);
  // Lends the `size` bytes at `data`, which must stay valid and unchanged
  // until `released` runs: on whichever thread drops the last copy of the
  // payload, once none is left.
  static Payload Borrow(const void* data, size_t size,
                        std::function<void()> released);

  size_t size() const { return rep_ == nullptr ? 0 : rep_->size; }
  bool empty() const { return size() == 0; }

  // Calls fn(absl::string_view piece) on each contiguous piece, in order.
  template <class Fn>
  void ForEachPiece(Fn&& fn) const {
    if (rep_ == nullptr) return;
    if (rep_->slices.empty()) {
      fn(rep_->bytes);
      return;
    }
    for (const grpc::Slice& slice : rep_->slices) {
      fn(absl::string_view(reinterpret_cast<const char*>(slice.begin()),
                           slice.size()));
    }
  }
  // Copies the size() bytes to `out`.
  void CopyTo(char* out) const;
  // Every byte is zero (true when empty).
  bool AllZero() const;
  // A copy of the bytes (digests, tests: small payloads).
  std::string ToString() const;

  // Appends the bytes to `slices` without copying them: a received
  // payload's own slices, or one slice holding a reference to this
  // payload, released on whichever thread gRPC drops it.
  void ShareInto(std::vector<grpc::Slice>* slices) const;

 private:
  struct Rep {
    Rep() = default;
    Rep(const Rep&) = delete;
    Rep& operator=(const Rep&) = delete;
    ~Rep() {
      if (released) released();
    }
    size_t size = 0;
    std::string text;                 // Payload(std::string)
    std::unique_ptr<char[]> buffer;   // Copy, Uninitialized
    absl::string_view bytes;          // text's, buffer's or borrowed
    std::vector<grpc::Slice> slices;  // Share
    std::function<void()> released;   // Borrow
  };
  explicit Payload(std::shared_ptr<const Rep> rep) : rep_(std::move(rep)) {}
  static void Release(void* reference);

  std::shared_ptr<const Rep> rep_;  // null: no bytes
};

// Moves the data field of `message` (a v1::Request or v1::Reply built with
// its data inside, as tests and control paths do) into a payload, leaving
// the field empty.
template <class Message>
Payload TakeData(Message* message) {
  Payload data(std::move(*message->mutable_data()));
  message->clear_data();
  return data;
}

}  // namespace dst

#endif  // DST_SERVICES_COMMON_TRANSPORT_PAYLOAD_H_
