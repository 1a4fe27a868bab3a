// Merging replicas' block status: see extents.h.
#include "services/gateway/extents.h"

#include <algorithm>

namespace dst {

std::vector<Extent> MergeExtents(
    const std::vector<std::vector<Extent>>& replicas) {
  std::vector<Extent> merged;
  if (replicas.empty()) return merged;
  // One cursor per replica: the extent it is in, and how much of it is left.
  struct Cursor {
    size_t index = 0;
    uint64_t left = 0;
  };
  std::vector<Cursor> cursors(replicas.size());
  for (size_t r = 0; r < replicas.size(); ++r) {
    if (replicas[r].empty()) return merged;
    cursors[r].left = replicas[r][0].length;
  }
  while (true) {
    uint64_t step = UINT64_MAX;
    uint32_t flags = kExtentHole | kExtentZero;
    for (size_t r = 0; r < replicas.size(); ++r) {
      Cursor& c = cursors[r];
      // Skip empty extents (a replica may send one; it says nothing).
      while (c.left == 0) {
        if (++c.index == replicas[r].size()) return merged;
        c.left = replicas[r][c.index].length;
      }
      step = std::min(step, c.left);
      flags &= replicas[r][c.index].flags;
    }
    if (!merged.empty() && merged.back().flags == flags) {
      merged.back().length += step;
    } else {
      merged.push_back(Extent{step, flags});
    }
    for (Cursor& c : cursors) c.left -= step;
  }
}

}  // namespace dst
