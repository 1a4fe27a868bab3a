// Limits every dst process shares, named once.
#ifndef DST_SERVICES_COMMON_BASE_LIMITS_H_
#define DST_SERVICES_COMMON_BASE_LIMITS_H_

#include <cstddef>

namespace dst {

// The largest gRPC message dst sends or accepts: room for the largest
// transfer a geometry allows plus a batch's headers.
inline constexpr int kMaxMessageBytes = 64 << 20;

// What one request or reply adds to a batch beyond its data (its header,
// as an estimate): the streams fill a message up to their batch limit
// counting each item as its data plus this.
inline constexpr size_t kBatchItemOverheadBytes = 32;

}  // namespace dst

#endif  // DST_SERVICES_COMMON_BASE_LIMITS_H_
