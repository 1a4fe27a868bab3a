// Block status of a volume from its replicas' answers (NBD base:allocation):
// each replica that reads may go to says, for a range, which parts are data,
// holes, or read as zeroes; the volume's answer must hold for every one of
// them, since a read may be served by any.
//
// - "zero" only where every replica reads zero;
// - "hole" only where every replica has a hole (never where one holds data
//   that reads could be served from);
// - the answer covers only as far as every replica answered (NBD allows an
//   answer shorter than the request, never a longer one).
#ifndef DST_SERVICES_GATEWAY_EXTENTS_H_
#define DST_SERVICES_GATEWAY_EXTENTS_H_

#include <vector>

#include "services/common/protocol/extent.h"

namespace dst {

// The replicas' extents for one range, each list starting at the range's
// offset, merged: pieces where every replica agrees on a bit keep it (the
// bits are ANDed), adjacent pieces with the same flags are joined, and the
// result ends where the shortest answer ends. Empty when there is no
// replica or one answered nothing.
std::vector<Extent> MergeExtents(
    const std::vector<std::vector<Extent>>& replicas);

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_EXTENTS_H_
