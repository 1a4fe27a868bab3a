// Address parsing: see address.h.
#include "services/common/base/address.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace dst {

std::string Address::GrpcTarget() const {
  if (kind == Kind::kUnix) return absl::StrCat("unix:", path);
  if (absl::StrContains(host, ':')) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<Address> ParseAddress(absl::string_view text) {
  Address address;
  if (absl::ConsumePrefix(&text, "unix:")) {
    if (text.empty()) {
      return absl::InvalidArgumentError("unix: address without a path");
    }
    if (text.size() > 107) {  // sizeof(sockaddr_un::sun_path) - 1
      return absl::InvalidArgumentError(
          absl::StrCat("unix socket path longer than 107 bytes: ", text));
    }
    address.kind = Address::Kind::kUnix;
    address.path = std::string(text);
    return address;
  }
  absl::string_view port;
  if (absl::ConsumePrefix(&text, "[")) {
    size_t close = text.find(']');
    if (close == absl::string_view::npos || close == 0) {
      return absl::InvalidArgumentError(
          "expected [ipv6]:port, with an address between the brackets");
    }
    address.host = std::string(text.substr(0, close));
    text.remove_prefix(close + 1);
    if (!absl::ConsumePrefix(&text, ":")) {
      return absl::InvalidArgumentError("expected ':port' after ']'");
    }
    port = text;
  } else {
    size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          "expected host:port, [v6]:port or unix:/path");
    }
    address.host = std::string(text.substr(0, colon));
    if (address.host.empty()) {
      return absl::InvalidArgumentError("empty host before ':port'");
    }
    if (absl::StrContains(address.host, ':')) {
      return absl::InvalidArgumentError(
          "an IPv6 address needs brackets: [v6]:port");
    }
    port = text.substr(colon + 1);
  }
  int value = 0;
  if (port.empty() || !absl::SimpleAtoi(port, &value) || value < 0 ||
      value > 65535 || port.find_first_not_of("0123456789") != port.npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("port must be a number 0..65535, not '", port, "'"));
  }
  address.port = value;
  return address;
}

}  // namespace dst
