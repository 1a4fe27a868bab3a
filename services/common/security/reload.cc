// Reloading certificates and the ACL: see reload.h.
#include "services/common/security/reload.h"

#include <utility>

#include "services/common/base/log.h"
#include "services/common/security/acl.h"
#include "services/common/security/tls.h"

namespace dst {

std::vector<std::string> ReloadableFiles(const Tls* tls, const AclHolder* acl) {
  std::vector<std::string> files;
  if (tls != nullptr && tls->options().mode != TlsMode::kOff) {
    for (const std::string* path :
         {&tls->options().cert, &tls->options().key, &tls->options().ca}) {
      if (!path->empty()) files.push_back(*path);
    }
  }
  if (acl != nullptr && acl->enabled()) files.push_back(acl->path());
  return files;
}

std::function<void()> ReloadOnHangup(std::shared_ptr<Tls> tls, AclHolder* acl,
                                     const std::string& service) {
  return [tls = std::move(tls), acl, service] {
    DST_LOG(Info, "%s: SIGHUP: reloading certificates and the ACL", service);
    if (tls != nullptr) (void)tls->Reload();  // logs its own outcome
    if (acl == nullptr) return;
    if (absl::Status s = acl->Reload(); !s.ok()) {
      DST_LOG(Error, "%s: ACL reload refused, the previous one stays: %s",
              service, s.ToString());
    }
  };
}

}  // namespace dst
