// TLS for every dst channel: modes, mutual TLS, and certificates reloaded
// on SIGHUP.
//
// Modes (flags --tls=, config `tls.mode`, plugin `tls=`):
//   off      plaintext everywhere;
//   on       TLS on TCP, plaintext on Unix sockets (local peers);
//   require  TLS everywhere, Unix sockets included.
// A server given a CA (--tls-ca) demands and verifies a client certificate
// signed by it (mutual TLS); a client given a CA verifies the server against
// it (else against the system's roots) and presents its own certificate
// when it has one. gRPC negotiates TLS 1.3 between dst processes (1.51 has no
// knob to refuse 1.2 to a foreign peer).
//
// Reload: the files are validated (PEM, key matches certificate) and staged
// into a private directory that gRPC's certificate watcher reads every
// second; Reload() (SIGHUP) validates and stages them again, so new
// handshakes use the new certificates while established connections and
// their streams go on. Files that do not validate are refused and the old
// ones stay in use.
//
// Thread-safe.
#ifndef DST_SERVICES_COMMON_SECURITY_TLS_H_
#define DST_SERVICES_COMMON_SECURITY_TLS_H_

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/tls_certificate_provider.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"

#include "services/common/base/address.h"

namespace dst {

enum class TlsMode { kOff, kOn, kRequire };

// "off", "on" or "require".
absl::StatusOr<TlsMode> ParseTlsMode(absl::string_view text);

struct TlsOptions {
  TlsMode mode = TlsMode::kOff;
  std::string cert;  // PEM certificate (chain) of this process
  std::string key;   // PEM private key of `cert`
  std::string ca;    // PEM CA: servers require client certs signed by it
  // Clients: the name the server's certificate must carry when it differs
  // from the address's host (always needed for Unix sockets; default
  // "localhost" there).
  std::string server_name;
};

// `text` as ParseTlsMode; empty means the default: on when `options` name a
// certificate (or, for a client, a CA), else off.
absl::StatusOr<TlsMode> TlsModeOrDefault(absl::string_view text,
                                         const TlsOptions& options,
                                         bool server);

class Tls {
 public:
  // Validates the files (a server needs cert and key when the mode is not
  // off) and stages them. Off: no files needed, nothing staged.
  static absl::StatusOr<std::shared_ptr<Tls>> Load(const TlsOptions& options,
                                                   bool server);
  ~Tls();
  Tls(const Tls&) = delete;
  Tls& operator=(const Tls&) = delete;

  // Validates the files again and stages them (SIGHUP). On error the
  // previous ones stay in use.
  absl::Status Reload();
  // Removes the staged copies (at exit; the destructor does it too).
  void RemoveStagedFiles();

  const TlsOptions& options() const { return options_; }
  // Servers: counts client certificates refused (not signed by the CA,
  // expired, wrong purpose) here; set before the server starts. Refusals
  // are also logged.
  void CountRefusalsIn(prometheus::Counter* counter) { refusals_ = counter; }
  // The same, into PREFIX_tls_refusals_total of `registry`.
  void CountRefusalsIn(prometheus::Registry& registry,
                       const std::string& prefix);
  // Whether a connection to or on `address` uses TLS under the mode.
  bool Applies(const Address& address) const;
  std::shared_ptr<grpc::ServerCredentials> ServerCredentials(
      const Address& address) const;
  // Adds the target name override to `args` where needed.
  std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(
      const Address& address, grpc::ChannelArguments* args) const;

 private:
  Tls(const TlsOptions& options, bool server)
      : options_(options), server_(server) {}
  absl::Status Stage();

  const TlsOptions options_;
  const bool server_;
  std::string dir_;  // staged copies: key.pem, cert.pem, ca.pem
  std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider_;
  std::shared_ptr<grpc::experimental::CertificateVerifier> verifier_;
  prometheus::Counter* refusals_ = nullptr;
  class ClientVerifier;
  absl::Mutex mu_;  // one Stage at a time
};

}  // namespace dst

#endif  // DST_SERVICES_COMMON_SECURITY_TLS_H_
