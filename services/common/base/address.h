// Parsing of the addresses every dst flag and config key takes:
// "host:port", "[v6]:port" or "unix:/path".
#ifndef DST_SERVICES_COMMON_BASE_ADDRESS_H_
#define DST_SERVICES_COMMON_BASE_ADDRESS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dst {

struct Address {
  enum class Kind { kTcp, kUnix };
  Kind kind = Kind::kTcp;
  std::string host;  // kTcp: name, IPv4 or IPv6 (without brackets)
  int port = 0;      // kTcp: 0..65535 (0 only where binding any port is ok)
  std::string path;  // kUnix: absolute or relative socket path

  // The form gRPC takes for both servers and channels.
  std::string GrpcTarget() const;
};

// Parses `text`; InvalidArgument says what is wrong with it.
absl::StatusOr<Address> ParseAddress(absl::string_view text);

}  // namespace dst

#endif  // DST_SERVICES_COMMON_BASE_ADDRESS_H_
