// ACL parsing and matching: see acl.h.
#include "services/common/security/acl.h"

#include <cstring>
#include <utility>

#include <arpa/inet.h>
#include <yaml-cpp/yaml.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

#include "services/common/base/atomic_file.h"
#include "services/common/base/log.h"
#include "services/common/base/status.h"
#include "services/common/security/unix_peers.h"

namespace dst {

namespace {

// "1.2.3.4" or "::1" into the 128-bit form; false if neither.
bool ParseIp(const std::string& text, std::array<uint8_t, 16>* out, bool* v4) {
  in_addr a4;
  in6_addr a6;
  if (inet_pton(AF_INET, text.c_str(), &a4) == 1) {
    out->fill(0);
    (*out)[10] = 0xff;
    (*out)[11] = 0xff;
    std::memcpy(out->data() + 12, &a4, 4);
    *v4 = true;
    return true;
  }
  if (inet_pton(AF_INET6, text.c_str(), &a6) == 1) {
    std::memcpy(out->data(), &a6, 16);
    *v4 = false;
    return true;
  }
  return false;
}

bool PrefixMatches(const std::array<uint8_t, 16>& a,
                   const std::array<uint8_t, 16>& b, int bits) {
  for (int i = 0; i < 16 && bits > 0; ++i, bits -= 8) {
    const int take = bits >= 8 ? 8 : bits;
    const uint8_t mask = static_cast<uint8_t>(0xff << (8 - take));
    if ((a[i] & mask) != (b[i] & mask)) return false;
  }
  return true;
}

absl::Status EntryError(size_t index, const std::string& key,
                        const std::string& why) {
  return absl::InvalidArgumentError(
      absl::StrCat("acl[", index, "]", key.empty() ? "" : ".", key, ": ", why));
}

}  // namespace

std::string AccessName(Access access) {
  switch (access) {
    case Access::kRead:
      return "read";
    case Access::kReadWrite:
      return "read-write";
    default:
      return "none";
  }
}

// gRPC percent-encodes peers ("ipv6:%5B::1%5D:5").
std::string PercentDecoded(absl::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    int value = 0;
    if (text[i] == '%' && i + 2 < text.size() &&
        absl::SimpleHexAtoi(text.substr(i + 1, 2), &value)) {
      out.push_back(static_cast<char>(value));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

Peer PeerFromString(absl::string_view encoded) {
  Peer peer;
  peer.text = PercentDecoded(encoded);
  absl::string_view text = peer.text;
  if (absl::ConsumePrefix(&text, "unix:") ||
      absl::ConsumePrefix(&text, "unix-abstract:")) {
    peer.local = true;
    return peer;
  }
  int fd = -1;
  if (absl::ConsumePrefix(&text, "fd:") && absl::SimpleAtoi(text, &fd)) {
    if (std::optional<UnixCredentials> credentials = UnixPeerOf(fd)) {
      peer.local = true;
      peer.uid = credentials->uid;
      peer.text = absl::StrCat("unix peer uid ", credentials->uid, " pid ",
                               credentials->pid);
    }
    return peer;
  }
  std::string host;
  if (absl::ConsumePrefix(&text, "ipv4:")) {
    host = std::string(text.substr(0, text.rfind(':')));
  } else if (absl::ConsumePrefix(&text, "ipv6:")) {
    absl::string_view rest = text;
    if (absl::ConsumePrefix(&rest, "[")) {
      host = std::string(rest.substr(0, rest.find(']')));
    }
    // A zone id ("fe80::1%eth0") is not part of the address.
    host = host.substr(0, host.find('%'));
  }
  bool v4 = false;
  peer.has_ip = !host.empty() && ParseIp(host, &peer.ip, &v4);
  return peer;
}

Peer PeerOf(const grpc::ServerContextBase& context) {
  Peer peer = PeerFromString(context.peer());
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth != nullptr && auth->IsPeerAuthenticated()) {
    for (const char* property :
         {"x509_common_name", "x509_subject_alternative_name"}) {
      for (const grpc::string_ref& value : auth->FindPropertyValues(property)) {
        peer.identities.emplace_back(value.data(), value.size());
      }
    }
  }
  return peer;
}

absl::StatusOr<Acl> Acl::Parse(absl::string_view yaml) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "acl: not valid YAML: line ", e.mark.line + 1, ": ", e.msg));
  }
  if (!root.IsSequence()) {
    return absl::InvalidArgumentError(
        "acl: expected a list of entries (identity/cidr/local/uid, access)");
  }
  Acl acl;
  for (size_t i = 0; i < root.size(); ++i) {
    const YAML::Node& node = root[i];
    if (!node.IsMap()) return EntryError(i, "", "expected a mapping");
    Entry entry;
    bool matches_something = false;
    for (const auto& field : node) {
      const std::string key = field.first.as<std::string>();
      if (!field.second.IsScalar()) {
        return EntryError(i, key, "expected a value");
      }
      const std::string value = field.second.as<std::string>();
      if (key == "identity") {
        if (value.empty()) return EntryError(i, key, "empty");
        entry.identity = value;
        matches_something = true;
      } else if (key == "cidr") {
        std::string address = value;
        int prefix = -1;
        if (size_t slash = value.find('/'); slash != std::string::npos) {
          address = value.substr(0, slash);
          if (!absl::SimpleAtoi(value.substr(slash + 1), &prefix)) prefix = -2;
        }
        bool v4 = false;
        if (!ParseIp(address, &entry.network, &v4)) {
          return EntryError(i, key,
                            absl::StrCat("'", value, "' is not an address"));
        }
        const int max = v4 ? 32 : 128;
        if (prefix == -1) prefix = max;
        if (prefix < 0 || prefix > max) {
          return EntryError(
              i, key, absl::StrCat("'", value, "': prefix must be 0..", max));
        }
        entry.prefix = v4 ? 96 + prefix : prefix;
        entry.has_cidr = true;
        matches_something = true;
      } else if (key == "local") {
        if (value != "true" && value != "false") {
          return EntryError(i, key, "expected true or false");
        }
        entry.local = value == "true";
        matches_something = true;
      } else if (key == "uid") {
        uint32_t uid = 0;
        if (!absl::SimpleAtoi(value, &uid)) {
          return EntryError(i, key,
                            absl::StrCat("'", value, "' is not a user id"));
        }
        entry.uid = uid;
        matches_something = true;
      } else if (key == "access") {
        if (value == "read") {
          entry.access = Access::kRead;
        } else if (value == "read-write") {
          entry.access = Access::kReadWrite;
        } else {
          return EntryError(
              i, key, absl::StrCat("'", value, "' must be read or read-write"));
        }
      } else {
        return EntryError(i, key, "unknown key");
      }
    }
    if (entry.access == Access::kNone) {
      return EntryError(i, "access", "required (read or read-write)");
    }
    if (!matches_something) {
      return EntryError(i, "", "needs identity, cidr, local or uid");
    }
    acl.entries_.push_back(std::move(entry));
  }
  return acl;
}

absl::StatusOr<Acl> Acl::Load(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path));
  absl::StatusOr<Acl> acl = Parse(text);
  if (!acl.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", acl.status().message()));
  }
  return acl;
}

Access Acl::Check(const Peer& peer) const {
  for (const Entry& entry : entries_) {
    if (!entry.identity.empty()) {
      bool found = false;
      for (const std::string& identity : peer.identities) {
        if (identity == entry.identity) found = true;
      }
      if (!found) continue;
    }
    if (entry.has_cidr &&
        (!peer.has_ip ||
         !PrefixMatches(entry.network, peer.ip, entry.prefix))) {
      continue;
    }
    if (entry.local.has_value() && *entry.local != peer.local) continue;
    if (entry.uid.has_value() && entry.uid != peer.uid) continue;
    return entry.access;
  }
  return Access::kNone;
}

absl::Status AclHolder::Reload() {
  if (path_.empty()) return absl::OkStatus();
  absl::StatusOr<Acl> acl = Acl::Load(path_);
  if (!acl.ok()) return acl.status();
  absl::MutexLock lock(&mu_);
  acl_ = std::make_shared<const Acl>(*std::move(acl));
  DST_LOG(Info, "acl: %d entries loaded from %s", acl_->size(), path_);
  return absl::OkStatus();
}

Access AclHolder::Check(const Peer& peer) const {
  if (path_.empty()) return Access::kReadWrite;
  std::shared_ptr<const Acl> acl;
  {
    absl::MutexLock lock(&mu_);
    acl = acl_;
  }
  return acl == nullptr ? Access::kNone : acl->Check(peer);
}

}  // namespace dst
