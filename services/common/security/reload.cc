// Reloading certificates and the ACL: see reload.h.
#include "services/common/security/reload.h"

#include <utility>

#include "services/common/base/log.h"
#include "services/common/security/acl.h"
#include "services/common/security/tls.h"

namespace dst {

std::vector<std::string> ReloadableFiles(const Tls* tls, const AclHolder* acl,
                                         const Tls* other_tls) {
  std::vector<std::string> files;
  for (const Tls* t : {tls, other_tls}) {
    if (t == nullptr || t->options().mode == TlsMode::kOff) continue;
    for (const std::string* path :
         {&t->options().cert, &t->options().key, &t->options().ca}) {
      if (!path->empty()) files.push_back(*path);
    }
  }
  if (acl != nullptr && acl->enabled()) files.push_back(acl->path());
  return files;
}

std::function<void()> ReloadOnHangup(std::shared_ptr<Tls> tls, AclHolder* acl,
                                     const std::string& service,
                                     std::shared_ptr<Tls> other_tls) {
  return [tls = std::move(tls), acl, service,
          other_tls = std::move(other_tls)] {
    DST_LOG(Info, "%s: SIGHUP: reloading certificates and the ACL", service);
    if (tls != nullptr) (void)tls->Reload();  // logs its own outcome
    if (other_tls != nullptr) (void)other_tls->Reload();
    if (acl == nullptr) return;
    if (absl::Status s = acl->Reload(); !s.ok()) {
      DST_LOG(Error, "%s: ACL reload refused, the previous one stays: %s",
              service, s.ToString());
    }
  };
}

}  // namespace dst
