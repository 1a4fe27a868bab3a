// TLS modes, mutual TLS and reloadable certificates: see tls.h.
#include "services/common/security/tls.h"

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <utility>

#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "absl/strings/str_cat.h"
#include "prometheus/counter.h"

#include "services/common/base/atomic_file.h"
#include "services/common/base/log.h"
#include "services/common/base/status.h"

namespace dst {

namespace {

constexpr unsigned int kWatchSeconds = 1;

// The certificates of a PEM file (at least one), or why not.
absl::Status CheckCertificates(const std::string& path, const std::string& text,
                               X509** first) {
  BIO* bio = BIO_new_mem_buf(text.data(), static_cast<int>(text.size()));
  int count = 0;
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    if (count++ == 0 && first != nullptr) {
      *first = cert;
    } else {
      X509_free(cert);
    }
  }
  BIO_free(bio);
  if (count == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": no PEM certificate in it"));
  }
  return absl::OkStatus();
}

absl::Status CheckKeyPair(const TlsOptions& options, const std::string& cert,
                          const std::string& key) {
  X509* x509 = nullptr;
  RETURN_IF_ERROR(CheckCertificates(options.cert, cert, &x509));
  BIO* bio = BIO_new_mem_buf(key.data(), static_cast<int>(key.size()));
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  absl::Status status;
  if (pkey == nullptr) {
    status = absl::InvalidArgumentError(
        absl::StrCat(options.key, ": no PEM private key in it"));
  } else if (X509_check_private_key(x509, pkey) != 1) {
    status = absl::InvalidArgumentError(
        absl::StrCat(options.key, " is not the private key of ", options.cert));
  }
  EVP_PKEY_free(pkey);
  X509_free(x509);
  return status;
}

}  // namespace

// Verifies client certificates against the staged CA itself (gRPC is told
// not to), so that each refusal is counted and logged with its reason.
class Tls::ClientVerifier
    : public grpc::experimental::ExternalCertificateVerifier {
 public:
  explicit ClientVerifier(const Tls* tls) : tls_(tls) {}

  bool Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)> /*callback*/,
              grpc::Status* sync_status) override {
    absl::Status status = Check(
        std::string(request->peer_cert().data(), request->peer_cert().size()),
        std::string(request->peer_cert_full_chain().data(),
                    request->peer_cert_full_chain().size()));
    if (!status.ok()) {
      if (tls_->refusals_ != nullptr) tls_->refusals_->Increment();
      DST_LOG(Warning, "tls: client certificate refused: %s", status.message());
    }
    *sync_status = ToGrpcStatus(status);
    return true;
  }
  void Cancel(grpc::experimental::TlsCustomVerificationCheckRequest*) override {
  }

 private:
  absl::Status Check(const std::string& leaf_pem,
                     const std::string& chain_pem) const {
    absl::StatusOr<std::string> ca = ReadWholeFile(tls_->dir_ + "/ca.pem");
    if (!ca.ok()) return absl::UnauthenticatedError("no CA to verify against");
    X509_STORE* store = X509_STORE_new();
    STACK_OF(X509)* chain = sk_X509_new_null();
    X509* leaf = nullptr;
    auto read_all = [](const std::string& pem, auto add) {
      BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
      while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
        add(cert);
      }
      BIO_free(bio);
    };
    read_all(*ca, [store](X509* cert) {
      X509_STORE_add_cert(store, cert);
      X509_free(cert);
    });
    read_all(chain_pem, [chain](X509* cert) { sk_X509_push(chain, cert); });
    read_all(leaf_pem, [&leaf](X509* cert) {
      if (leaf == nullptr) {
        leaf = cert;
      } else {
        X509_free(cert);
      }
    });
    absl::Status status;
    if (leaf == nullptr) {
      status = absl::UnauthenticatedError("no client certificate");
    } else {
      X509_STORE_CTX* ctx = X509_STORE_CTX_new();
      X509_STORE_CTX_init(ctx, store, leaf, chain);
      X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
      if (X509_verify_cert(ctx) != 1) {
        char subject[256] = "?";
        X509_NAME_oneline(X509_get_subject_name(leaf), subject,
                          sizeof(subject));
        status = absl::UnauthenticatedError(absl::StrCat(
            subject, ": ",
            X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx))));
      }
      X509_STORE_CTX_free(ctx);
      X509_free(leaf);
    }
    sk_X509_pop_free(chain, X509_free);
    X509_STORE_free(store);
    return status;
  }

  const Tls* const tls_;
};

absl::StatusOr<TlsMode> ParseTlsMode(absl::string_view text) {
  if (text == "off") return TlsMode::kOff;
  if (text == "on") return TlsMode::kOn;
  if (text == "require") return TlsMode::kRequire;
  return absl::InvalidArgumentError(
      absl::StrCat("'", text, "' must be off, on or require"));
}

absl::StatusOr<TlsMode> TlsModeOrDefault(absl::string_view text,
                                         const TlsOptions& options,
                                         bool server) {
  if (!text.empty()) return ParseTlsMode(text);
  const bool files = !options.cert.empty() || (!server && !options.ca.empty());
  return files ? TlsMode::kOn : TlsMode::kOff;
}

absl::StatusOr<std::shared_ptr<Tls>> Tls::Load(const TlsOptions& options,
                                               bool server) {
  std::shared_ptr<Tls> tls(new Tls(options, server));
  if (options.mode == TlsMode::kOff) return tls;
  if (server && (options.cert.empty() || options.key.empty())) {
    return absl::InvalidArgumentError(
        "TLS needs a certificate and its key (--tls-cert, --tls-key)");
  }
  if (options.cert.empty() != options.key.empty()) {
    return absl::InvalidArgumentError(
        "a TLS certificate goes with its key: give both or neither");
  }
  char dir[] = "/tmp/dst-tls-XXXXXX";
  if (mkdtemp(dir) == nullptr) {
    return absl::InternalError("cannot make a directory for TLS files");
  }
  tls->dir_ = dir;
  RETURN_IF_ERROR(tls->Stage());
  const std::string key = options.key.empty() ? "" : tls->dir_ + "/key.pem";
  const std::string cert = options.cert.empty() ? "" : tls->dir_ + "/cert.pem";
  const std::string ca = options.ca.empty() ? "" : tls->dir_ + "/ca.pem";
  tls->provider_ =
      std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          key, cert, ca, kWatchSeconds);
  if (server && !options.ca.empty()) {
    // gRPC's factory hands the verifier to its C core, which owns it; the
    // static analyzer cannot see that and reports a leak inside gRPC's
    // header, where no NOLINT reaches.
#ifndef __clang_analyzer__
    tls->verifier_ =
        grpc::experimental::ExternalCertificateVerifier::Create<ClientVerifier>(
            tls.get());
#endif
  }
  return tls;
}

Tls::~Tls() { RemoveStagedFiles(); }

void Tls::RemoveStagedFiles() {
  absl::MutexLock lock(&mu_);
  if (dir_.empty()) return;
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

absl::Status Tls::Stage() {
  absl::MutexLock lock(&mu_);
  std::string cert, key, ca;
  if (!options_.cert.empty()) {
    ASSIGN_OR_RETURN(cert, ReadWholeFile(options_.cert));
    ASSIGN_OR_RETURN(key, ReadWholeFile(options_.key));
    RETURN_IF_ERROR(CheckKeyPair(options_, cert, key));
  }
  if (!options_.ca.empty()) {
    ASSIGN_OR_RETURN(ca, ReadWholeFile(options_.ca));
    RETURN_IF_ERROR(CheckCertificates(options_.ca, ca, nullptr));
  }
  // The key first: the watcher pairs what it finds, and a new certificate
  // with the old key would not load.
  if (!key.empty()) {
    // The directory is mkdtemp's, mode 0700: the copy is as private.
    RETURN_IF_ERROR(WriteFileAtomically(dir_ + "/key.pem", key));
    RETURN_IF_ERROR(WriteFileAtomically(dir_ + "/cert.pem", cert));
  }
  if (!ca.empty()) RETURN_IF_ERROR(WriteFileAtomically(dir_ + "/ca.pem", ca));
  return absl::OkStatus();
}

void Tls::CountRefusalsIn(prometheus::Registry& registry,
                          const std::string& prefix) {
  CountRefusalsIn(
      &prometheus::BuildCounter()
           .Name(prefix + "_tls_refusals_total")
           .Help("Client certificates refused in the TLS handshake (not "
                 "signed by the CA, expired, wrong purpose).")
           .Register(registry)
           .Add({}));
}

absl::Status Tls::Reload() {
  if (options_.mode == TlsMode::kOff) return absl::OkStatus();
  absl::Status status = Stage();
  if (status.ok()) {
    DST_LOG(Info, "tls: certificates reloaded from %s%s%s", options_.cert,
            options_.ca.empty() ? "" : " and ", options_.ca);
  } else {
    DST_LOG(Error, "tls: reload refused, the previous certificates stay: %s",
            status.ToString());
  }
  return status;
}

bool Tls::Applies(const Address& address) const {
  switch (options_.mode) {
    case TlsMode::kOff:
      return false;
    case TlsMode::kOn:
      return address.kind == Address::Kind::kTcp;
    case TlsMode::kRequire:
      return true;
  }
  return false;
}

std::shared_ptr<grpc::ServerCredentials> Tls::ServerCredentials(
    const Address& address) const {
  if (!Applies(address)) return grpc::InsecureServerCredentials();
  grpc::experimental::TlsServerCredentialsOptions options(provider_);
  options.watch_identity_key_cert_pairs();
  if (!options_.ca.empty()) {
    options.watch_root_certs();
    // Verified by ClientVerifier against the same staged CA, to count and
    // log refusals.
    options.set_cert_request_type(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_BUT_DONT_VERIFY);
    options.set_certificate_verifier(verifier_);
  } else {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> Tls::ChannelCredentials(
    const Address& address, grpc::ChannelArguments* args) const {
  if (!Applies(address)) return grpc::InsecureChannelCredentials();
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(provider_);
  if (!options_.ca.empty()) options.watch_root_certs();
  if (!options_.cert.empty()) options.watch_identity_key_cert_pairs();
  options.set_verify_server_certs(true);
  if (!options_.server_name.empty()) {
    args->SetSslTargetNameOverride(options_.server_name);
  } else if (address.kind == Address::Kind::kUnix) {
    args->SetSslTargetNameOverride("localhost");
  }
  return grpc::experimental::TlsCredentials(options);
}

}  // namespace dst
