// Block status on the wire and in the engine: an extent is a run of bytes
// with NBD's base:allocation flags (data, hole, reads as zeroes). Exporters
// answer for their backing store; the gateway merges its replicas' answers
// (services/gateway/extents.h).
#ifndef DST_SERVICES_COMMON_PROTOCOL_EXTENT_H_
#define DST_SERVICES_COMMON_PROTOCOL_EXTENT_H_

#include <cstdint>

namespace dst {

// NBD's base:allocation flags.
inline constexpr uint32_t kExtentHole = 1;  // not allocated
inline constexpr uint32_t kExtentZero = 2;  // reads as zeroes

struct Extent {
  uint64_t length = 0;
  uint32_t flags = 0;  // kExtentHole | kExtentZero bits; 0: data
  bool operator==(const Extent& o) const {
    return length == o.length && flags == o.flags;
  }
};

}  // namespace dst

#endif  // DST_SERVICES_COMMON_PROTOCOL_EXTENT_H_
