// One bit per fixed-size region of a volume: a replica's dirty regions (the
// writes it missed) or the regions written since its last flush. Stored in
// the volume's state file as bytes, least significant bit first.
//
// Not thread-safe: the volume guards its bitmaps with its own lock.
#ifndef DST_SERVICES_GATEWAY_REGION_BITMAP_H_
#define DST_SERVICES_GATEWAY_REGION_BITMAP_H_

#include <cstdint>
#include <string>
#include <vector>

namespace dst {

class RegionBitmap {
 public:
  RegionBitmap() = default;
  explicit RegionBitmap(uint64_t regions)
      : regions_(regions), bits_((regions + 7) / 8, 0) {}

  uint64_t size() const { return regions_; }
  // More regions, clear; the others keep their bits. Never fewer.
  void Grow(uint64_t regions) {
    if (regions <= regions_) return;
    regions_ = regions;
    bits_.resize((regions + 7) / 8, 0);
  }
  bool Test(uint64_t region) const {
    return bits_[region / 8] & (1u << (region % 8));
  }
  // Sets [first, last]; true when a bit changed.
  bool Set(uint64_t first, uint64_t last) {
    bool changed = false;
    for (uint64_t r = first; r <= last && r < regions_; ++r) {
      uint8_t& byte = bits_[r / 8];
      const uint8_t bit = static_cast<uint8_t>(1u << (r % 8));
      if (!(byte & bit)) {
        byte |= bit;
        ++count_;
        changed = true;
      }
    }
    return changed;
  }
  void SetAll() { Set(0, regions_ == 0 ? 0 : regions_ - 1); }
  void Clear(uint64_t region) {
    uint8_t& byte = bits_[region / 8];
    const uint8_t bit = static_cast<uint8_t>(1u << (region % 8));
    if (byte & bit) {
      byte &= static_cast<uint8_t>(~bit);
      --count_;
    }
  }
  void ClearAll() {
    bits_.assign(bits_.size(), 0);
    count_ = 0;
  }
  // True when no bit in [first, last] is set.
  bool AllClear(uint64_t first, uint64_t last) const {
    for (uint64_t r = first; r <= last && r < regions_; ++r) {
      if (Test(r)) return false;
    }
    return true;
  }
  // Ors `other` (same size) in; true when a bit changed.
  bool Merge(const RegionBitmap& other) {
    bool changed = false;
    for (size_t b = 0; b < bits_.size() && b < other.bits_.size(); ++b) {
      const uint8_t add = static_cast<uint8_t>(other.bits_[b] & ~bits_[b]);
      if (add == 0) continue;
      bits_[b] |= add;
      count_ += static_cast<uint64_t>(__builtin_popcount(add));
      changed = true;
    }
    return changed;
  }
  uint64_t count() const { return count_; }
  // The first set bit at or after `from`, wrapping around; size() if none.
  uint64_t NextSet(uint64_t from) const {
    if (count_ == 0) return regions_;
    if (from >= regions_) from = 0;
    uint64_t found = Scan(from, regions_);
    return found != regions_ ? found : Scan(0, from);
  }

  std::string ToBytes() const {
    return std::string(bits_.begin(), bits_.end());
  }
  // False when `bytes` does not fit `regions`.
  bool FromBytes(uint64_t regions, const std::string& bytes) {
    if (bytes.size() != (regions + 7) / 8) return false;
    *this = RegionBitmap(regions);
    for (uint64_t r = 0; r < regions; ++r) {
      if (static_cast<uint8_t>(bytes[r / 8]) & (1u << (r % 8))) Set(r, r);
    }
    return true;
  }

 private:
  // The first set bit in [begin, end), or size().
  uint64_t Scan(uint64_t begin, uint64_t end) const {
    for (uint64_t r = begin; r < end;) {
      if (r % 8 == 0 && bits_[r / 8] == 0) {
        r += 8;
        continue;
      }
      if (Test(r)) return r;
      ++r;
    }
    return regions_;
  }

  uint64_t regions_ = 0;
  uint64_t count_ = 0;
  std::vector<uint8_t> bits_;
};

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_REGION_BITMAP_H_
