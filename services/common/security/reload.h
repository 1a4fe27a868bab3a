// Reloading a service's certificates and ACL on SIGHUP or when their files
// change (see WaitForTerminationSignal in base/signals.h).
#ifndef DST_SERVICES_COMMON_SECURITY_RELOAD_H_
#define DST_SERVICES_COMMON_SECURITY_RELOAD_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace dst {

class AclHolder;
class Tls;

// The SIGHUP action of a service: re-reads its certificates, its ACL and
// the certificates of its client to another service (`other_tls`: the
// gateway's to etcd); any may be null. Logs what was refused.
std::function<void()> ReloadOnHangup(std::shared_ptr<Tls> tls, AclHolder* acl,
                                     const std::string& service,
                                     std::shared_ptr<Tls> other_tls = nullptr);

// The files ReloadOnHangup re-reads: `tls`'s certificate, key and CA,
// `acl`'s file and `other_tls`'s files (any may be null).
std::vector<std::string> ReloadableFiles(const Tls* tls, const AclHolder* acl,
                                         const Tls* other_tls = nullptr);

}  // namespace dst

#endif  // DST_SERVICES_COMMON_SECURITY_RELOAD_H_
