// The pre-sized in-flight table: see transaction_table.h.
#include "services/common/transport/transaction_table.h"

#include <cassert>

namespace dst {

TransactionTable::TransactionTable(size_t capacity) {
  size_t size = 1;
  while (size < capacity) {
    size <<= 1;
    ++slot_bits_;
  }
  slots_.resize(size);
  free_.reserve(size);
  for (size_t i = size; i > 0; --i)
    free_.push_back(static_cast<uint32_t>(i - 1));
}

Transaction* TransactionTable::Allocate() {
  if (free_.empty()) return nullptr;
  uint32_t slot = free_.back();
  free_.pop_back();
  Transaction& transaction = slots_[slot];
  transaction.id = (next_sequence_++ << slot_bits_) | slot;
  transaction.sends = 0;
  ++in_use_;
  return &transaction;
}

Transaction* TransactionTable::Find(uint64_t id) {
  if (id == 0) return nullptr;
  Transaction& transaction = slots_[id & (slots_.size() - 1)];
  return transaction.id == id ? &transaction : nullptr;
}

void TransactionTable::Release(Transaction* transaction) {
  assert(transaction != nullptr && transaction->id != 0);
  uint32_t slot = static_cast<uint32_t>(transaction - slots_.data());
  transaction->id = 0;
  transaction->request.Clear();
  transaction->data = Payload();
  transaction->done = nullptr;
  free_.push_back(slot);
  --in_use_;
}

void TransactionTable::ForEach(const std::function<void(Transaction&)>& fn) {
  for (Transaction& transaction : slots_) {
    if (transaction.id != 0) fn(transaction);
  }
}

void TransactionTable::ForEach(
    const std::function<void(const Transaction&)>& fn) const {
  for (const Transaction& transaction : slots_) {
    if (transaction.id != 0) fn(transaction);
  }
}

}  // namespace dst
