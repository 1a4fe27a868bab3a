// Transaction payloads: see payload.h.
#include "services/common/transport/payload.h"

#include <cstring>

#include "services/common/base/tsan.h"

namespace dst {

Payload::Payload(std::string bytes) {
  if (bytes.empty()) return;
  auto rep = std::make_shared<Rep>();
  rep->size = bytes.size();
  rep->text = std::move(bytes);
  rep->bytes = rep->text;
  rep_ = std::move(rep);
}

Payload Payload::Copy(const void* data, size_t size) {
  char* bytes = nullptr;
  Payload payload = Uninitialized(size, &bytes);
  if (size > 0) std::memcpy(bytes, data, size);
  return payload;
}

Payload Payload::Uninitialized(size_t size, char** bytes) {
  if (size == 0) {
    *bytes = nullptr;
    return Payload();
  }
  auto rep = std::make_shared<Rep>();
  rep->size = size;
  // new char[] leaves the bytes uninitialized: a read fills them at once.
  rep->buffer.reset(new char[size]);
  rep->bytes = absl::string_view(rep->buffer.get(), size);
  *bytes = rep->buffer.get();
  return Payload(std::shared_ptr<const Rep>(std::move(rep)));
}

Payload Payload::Share(std::vector<grpc::Slice> slices) {
  size_t size = 0;
  for (const grpc::Slice& slice : slices) size += slice.size();
  if (size == 0) return Payload();
  auto rep = std::make_shared<Rep>();
  rep->size = size;
  rep->slices = std::move(slices);
  return Payload(std::shared_ptr<const Rep>(std::move(rep)));
}

Payload Payload::Borrow(const void* data, size_t size,
                        std::function<void()> released) {
  auto rep = std::make_shared<Rep>();
  rep->size = size;
  rep->bytes = absl::string_view(static_cast<const char*>(data), size);
  rep->released = std::move(released);
  return Payload(std::shared_ptr<const Rep>(std::move(rep)));
}

bool Payload::AllZero() const {
  bool zero = true;
  ForEachPiece([&zero](absl::string_view piece) {
    // Zero when the first byte is and every byte equals the next.
    if (zero && !piece.empty()) {
      zero = piece[0] == 0 &&
             std::memcmp(piece.data(), piece.data() + 1, piece.size() - 1) == 0;
    }
  });
  return zero;
}

void Payload::CopyTo(char* out) const {
  ForEachPiece([&out](absl::string_view piece) {
    std::memcpy(out, piece.data(), piece.size());
    out += piece.size();
  });
}

std::string Payload::ToString() const {
  std::string out(size(), '\0');
  CopyTo(out.data());
  return out;
}

// Runs on whichever gRPC thread drops the slice's last reference.
void Payload::Release(void* reference) {
  DST_TSAN_AFTER_GRPC(reference);
  delete static_cast<std::shared_ptr<const Rep>*>(reference);
}

void Payload::ShareInto(std::vector<grpc::Slice>* slices) const {
  if (rep_ == nullptr) return;
  if (!rep_->slices.empty()) {
    // gRPC's own slices: sharing one is taking a reference.
    slices->insert(slices->end(), rep_->slices.begin(), rep_->slices.end());
    return;
  }
  auto* reference = new std::shared_ptr<const Rep>(rep_);
  DST_TSAN_BEFORE_GRPC(reference);  // released on a gRPC thread
  slices->emplace_back(const_cast<char*>(rep_->bytes.data()),
                       rep_->bytes.size(), Release, reference);
}

}  // namespace dst
