// The in-flight table of a transaction stream: a pre-sized pool of
// transaction slots, each in use by at most one transaction at a time.
//
// Ids are unique per table: (sequence << slot_bits) | slot, with a sequence
// that only grows, so a reply for a transaction that already completed (a
// late or duplicated reply) never matches the slot's next occupant: Find()
// returns nullptr for it. Allocation never allocates memory.
//
// Not thread-safe: the owner serialises access.
#ifndef DST_SERVICES_COMMON_TRANSPORT_TRANSACTION_TABLE_H_
#define DST_SERVICES_COMMON_TRANSPORT_TRANSACTION_TABLE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "absl/time/time.h"

#include "dst/v1/exporter.pb.h"
#include "services/common/transport/payload.h"

namespace dst {

// Called exactly once with the transaction's reply (status may be an error)
// and the reply's data (a read's bytes; the reply's own data field is
// empty).
using TransactionDone = std::function<void(v1::Reply&&, Payload&&)>;

struct Transaction {
  uint64_t id = 0;      // 0 while the slot is free
  v1::Request request;  // its data field empty
  // The request's data: shared with the writes carrying it
  // (outgoing_batch.h), with the other replicas of a mirrored write, and
  // with the next stream when this one ends.
  Payload data;
  TransactionDone done;
  absl::Time submitted;  // when the caller handed it over
  absl::Time sent;       // last time it went on the wire
  int sends = 0;         // times written to the wire (>1: resent)
};

class TransactionTable {
 public:
  // `capacity` is rounded up to a power of two (at least 1).
  explicit TransactionTable(size_t capacity);
  TransactionTable(const TransactionTable&) = delete;
  TransactionTable& operator=(const TransactionTable&) = delete;

  // A free slot with a fresh id, or nullptr when all slots are in use.
  Transaction* Allocate();
  // The in-use transaction with this id, or nullptr (unknown, late, freed).
  Transaction* Find(uint64_t id);
  // Frees the slot; its request, data and callback are destroyed.
  void Release(Transaction* transaction);

  size_t in_use() const { return in_use_; }
  size_t capacity() const { return slots_.size(); }

  // Calls `fn` on every in-use transaction, in slot order.
  void ForEach(const std::function<void(Transaction&)>& fn);
  void ForEach(const std::function<void(const Transaction&)>& fn) const;

 private:
  std::vector<Transaction> slots_;
  std::vector<uint32_t> free_;  // stack of free slot indexes
  uint32_t slot_bits_ = 0;
  uint64_t next_sequence_ = 1;
  size_t in_use_ = 0;
};

}  // namespace dst

#endif  // DST_SERVICES_COMMON_TRANSPORT_TRANSACTION_TABLE_H_
