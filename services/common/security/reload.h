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

// The SIGHUP action of a service: re-reads its certificates and its ACL
// (either may be null), logging what was refused.
std::function<void()> ReloadOnHangup(std::shared_ptr<Tls> tls, AclHolder* acl,
                                     const std::string& service);

// The files ReloadOnHangup re-reads: `tls`'s certificate, key and CA and
// `acl`'s file (either may be null).
std::vector<std::string> ReloadableFiles(const Tls* tls, const AclHolder* acl);

}  // namespace dst

#endif  // DST_SERVICES_COMMON_SECURITY_RELOAD_H_
