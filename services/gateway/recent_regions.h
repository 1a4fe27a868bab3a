// The regions a mirror wrote most recently, at most `capacity` of them, the
// least recent forgotten first (an LRU). The activity log keeps these
// active across flushes, as DRBD keeps its al-extents: a write into a hot
// region then never waits for a state save, at the price of copying them
// all between replicas after a gateway crash.
//
// Not thread-safe: MirrorState owns it, under the volume's lock.
#ifndef DST_SERVICES_GATEWAY_RECENT_REGIONS_H_
#define DST_SERVICES_GATEWAY_RECENT_REGIONS_H_

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <list>
#include <unordered_map>

namespace dst {

class RecentRegions {
 public:
  explicit RecentRegions(size_t capacity) : capacity_(capacity) {}

  size_t size() const { return order_.size(); }
  bool Contains(uint64_t region) const { return where_.count(region) != 0; }

  // `region` was written: it becomes the most recent, and the least recent
  // is forgotten when there are more than `capacity`.
  void Touch(uint64_t region) {
    if (capacity_ == 0) return;
    auto it = where_.find(region);
    if (it != where_.end()) {
      order_.splice(order_.begin(), order_, it->second);
      return;
    }
    if (order_.size() == capacity_) {
      where_.erase(order_.back());
      // The least recent's list node becomes the new region's.
      order_.splice(order_.begin(), order_, std::prev(order_.end()));
      order_.front() = region;
    } else {
      order_.push_front(region);
    }
    where_[region] = order_.begin();
  }

  template <typename Fn>
  void ForEach(Fn fn) const {
    for (uint64_t region : order_) fn(region);
  }

  void Clear() {
    order_.clear();
    where_.clear();
  }

 private:
  const size_t capacity_;
  std::list<uint64_t> order_;  // most recent first
  std::unordered_map<uint64_t, std::list<uint64_t>::iterator> where_;
};

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_RECENT_REGIONS_H_
