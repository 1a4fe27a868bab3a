// Incoming batches: see incoming_batch.h.
//
// A batch is the repeated field 1 of RequestBatch/ReplyBatch: for each item
// a tag, a length and the item's encoding. An item smaller than
// kSlicedPayloadBytes is parsed by the generated code and its data moved
// out. A larger one is scanned field by field: its data field is taken as
// references to the slices it lies in, the other fields are gathered into
// a small header that the generated code parses.
#include "services/common/transport/incoming_batch.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace dst {
namespace {

// RequestBatch.requests, ReplyBatch.replies.
constexpr uint32_t kItemsField = 1;

enum WireType : uint32_t {
  kVarint = 0,
  kFixed64 = 1,
  kLengthDelimited = 2,
  kFixed32 = 5,
};

// Reads the bytes of a sequence of slices from front to back.
class SliceReader {
 public:
  explicit SliceReader(const std::vector<grpc::Slice>& slices)
      : slices_(slices) {
    for (const grpc::Slice& slice : slices) left_ += slice.size();
    SkipEmpty();
  }

  // Where the reader is, to copy from later (CopySince).
  struct Mark {
    size_t slice;
    size_t offset;
  };
  Mark mark() const { return {slice_, offset_}; }

  size_t left() const { return left_; }  // bytes not read yet

  // False when the bytes end first or the varint is over 10 bytes.
  bool ReadVarint(uint64_t* value) {
    *value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (left_ == 0) return false;
      const uint8_t byte = slices_[slice_].begin()[offset_];
      Advance(1);
      *value |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return false;
  }

  // The next `n` bytes when they lie in one slice (nullptr otherwise),
  // without moving.
  const uint8_t* Peek(size_t n) const {
    if (n > left_ || slice_ == slices_.size()) return nullptr;
    if (slices_[slice_].size() - offset_ < n) return nullptr;
    return slices_[slice_].begin() + offset_;
  }

  // The caller checked n <= left().
  void Skip(size_t n) { Advance(n); }

  // Appends the next `n` bytes to `out` (n <= left()).
  void CopyTo(size_t n, std::string* out) {
    while (n > 0) {
      const grpc::Slice& slice = slices_[slice_];
      const size_t take = std::min(n, slice.size() - offset_);
      out->append(reinterpret_cast<const char*>(slice.begin()) + offset_, take);
      Advance(take);
      n -= take;
    }
  }

  // Appends references to the next `n` bytes to `out` (n <= left()).
  void ShareTo(size_t n, std::vector<grpc::Slice>* out) {
    while (n > 0) {
      const grpc::Slice& slice = slices_[slice_];
      const size_t take = std::min(n, slice.size() - offset_);
      out->push_back(slice.sub(offset_, offset_ + take));
      Advance(take);
      n -= take;
    }
  }

  // Appends the bytes read since `from` to `out`.
  void CopySince(Mark from, std::string* out) const {
    for (size_t s = from.slice; s <= slice_ && s < slices_.size(); ++s) {
      const size_t begin = s == from.slice ? from.offset : 0;
      const size_t end = s == slice_ ? offset_ : slices_[s].size();
      out->append(reinterpret_cast<const char*>(slices_[s].begin()) + begin,
                  end - begin);
    }
  }

 private:
  void Advance(size_t n) {
    left_ -= n;
    offset_ += n;
    while (slice_ < slices_.size() && offset_ >= slices_[slice_].size()) {
      offset_ -= slices_[slice_].size();
      ++slice_;
    }
  }
  void SkipEmpty() { Advance(0); }

  const std::vector<grpc::Slice>& slices_;
  size_t slice_ = 0;
  size_t offset_ = 0;
  size_t left_ = 0;
};

absl::Status Malformed(absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("malformed transaction batch: ", what));
}

// Skips a field's value of wire type `type`, which must end at least
// `end_left` bytes before the end. False on a truncated value or an
// unknown wire type. Groups (deprecated; no dst peer sends them) are
// refused, where protobuf would skip them.
bool SkipValue(SliceReader& reader, uint32_t type, size_t end_left) {
  uint64_t value;
  switch (type) {
    case kVarint:
      return reader.ReadVarint(&value) && reader.left() >= end_left;
    case kFixed64:
    case kFixed32: {
      const size_t n = type == kFixed64 ? 8 : 4;
      if (reader.left() < end_left + n) return false;
      reader.Skip(n);
      return true;
    }
    case kLengthDelimited:
      if (!reader.ReadVarint(&value) || reader.left() < end_left ||
          value > reader.left() - end_left) {
        return false;
      }
      reader.Skip(static_cast<size_t>(value));
      return true;
    default:
      return false;
  }
}

// Parses one item of `length` bytes (checked to be there) into `item` and
// `data`.
template <class Item>
absl::Status ParseItem(SliceReader& reader, size_t length, Item* item,
                       Payload* data) {
  if (length < kSlicedPayloadBytes) {
    bool parsed;
    if (const uint8_t* bytes = reader.Peek(length)) {
      parsed = item->ParseFromArray(bytes, static_cast<int>(length));
      reader.Skip(length);
    } else {
      std::string copy;
      copy.reserve(length);
      reader.CopyTo(length, &copy);
      parsed = item->ParseFromString(copy);
    }
    if (!parsed) return Malformed("an item does not parse");
    *data = Payload(std::move(*item->mutable_data()));
    item->clear_data();
    return absl::OkStatus();
  }
  // Scanned: every field but the data goes to `header`.
  const size_t end_left = reader.left() - length;
  std::string header;
  while (reader.left() > end_left) {
    const SliceReader::Mark start = reader.mark();
    uint64_t tag;
    if (!reader.ReadVarint(&tag) || reader.left() < end_left) {
      return Malformed("a truncated tag");
    }
    const uint32_t type = static_cast<uint32_t>(tag & 7);
    if (type == kLengthDelimited && (tag >> 3) == Item::kDataFieldNumber) {
      uint64_t size;
      if (!reader.ReadVarint(&size) || reader.left() < end_left ||
          size > reader.left() - end_left) {
        return Malformed("the data runs past its item");
      }
      // As in protobuf, the last occurrence of the field wins.
      if (size >= kSlicedPayloadBytes) {
        std::vector<grpc::Slice> slices;
        reader.ShareTo(static_cast<size_t>(size), &slices);
        *data = Payload::Share(std::move(slices));
      } else {
        std::string bytes;
        reader.CopyTo(static_cast<size_t>(size), &bytes);
        *data = Payload(std::move(bytes));
      }
      continue;
    }
    if (!SkipValue(reader, type, end_left)) {
      return Malformed("a field runs past its item or has no valid type");
    }
    reader.CopySince(start, &header);
  }
  if (!item->ParseFromString(header)) {
    return Malformed("an item's header does not parse");
  }
  return absl::OkStatus();
}

}  // namespace

template <class Item>
absl::Status IncomingBatch<Item>::Parse(
    const std::vector<grpc::Slice>& slices) {
  Clear();
  SliceReader reader(slices);
  absl::Status status;
  while (status.ok() && reader.left() > 0) {
    uint64_t tag;
    if (!reader.ReadVarint(&tag)) {
      status = Malformed("a truncated tag");
      break;
    }
    const uint32_t type = static_cast<uint32_t>(tag & 7);
    if ((tag >> 3) != kItemsField || type != kLengthDelimited) {
      // An unknown field of the batch (or the items' number with another
      // wire type): skipped, as protobuf would.
      if (!SkipValue(reader, type, 0)) {
        status = Malformed("a truncated field or one of no valid type");
      }
      continue;
    }
    uint64_t length;
    if (!reader.ReadVarint(&length) || length > reader.left()) {
      status = Malformed("an item runs past the batch");
      break;
    }
    items_.emplace_back();
    data_.emplace_back();
    status = ParseItem(reader, static_cast<size_t>(length), &items_.back(),
                       &data_.back());
  }
  if (!status.ok()) Clear();
  return status;
}

template class IncomingBatch<v1::Request>;
template class IncomingBatch<v1::Reply>;

}  // namespace dst
