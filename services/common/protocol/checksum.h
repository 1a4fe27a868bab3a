// Per-request digests (ChecksumAlgorithm in exporter.proto): CRC32C, with
// the SSE4.2 instruction when the CPU has it, and SHA-256 through OpenSSL's
// EVP. Used on every hop: the plugin checksums writes and verifies reads,
// the gateway verifies both directions and fails a read over to another
// replica on a mismatch, the exporter verifies writes before storage.
#ifndef DST_SERVICES_COMMON_PROTOCOL_CHECKSUM_H_
#define DST_SERVICES_COMMON_PROTOCOL_CHECKSUM_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

#include "dst/v1/exporter.pb.h"
#include "services/common/transport/payload.h"

namespace dst {

// Digest size in bytes; 0 for CHECKSUM_NONE or an unknown value.
size_t ChecksumSize(v1::ChecksumAlgorithm algorithm);
// The FEATURE_CHECKSUM_* bit of an algorithm (0 for none).
uint32_t ChecksumFeature(v1::ChecksumAlgorithm algorithm);
// The algorithm's name ("crc32c", "sha256", "none").
std::string ChecksumName(v1::ChecksumAlgorithm algorithm);

// By ISA-L (libisal), the fastest code the CPU runs.
uint32_t Crc32c(absl::string_view data, uint32_t crc = 0);
// The same, by table, byte by byte: the reference for tests.
uint32_t Crc32cPortable(absl::string_view data, uint32_t crc = 0);
std::string ComputeChecksum(v1::ChecksumAlgorithm algorithm,
                            absl::string_view data);
// The same over a payload's pieces, in place.
std::string ComputeChecksum(v1::ChecksumAlgorithm algorithm,
                            const Payload& data);
// DataLoss naming `what` when `expected` is not the digest of `data`.
absl::Status VerifyChecksum(v1::ChecksumAlgorithm algorithm,
                            absl::string_view data, absl::string_view expected,
                            absl::string_view what);
absl::Status VerifyChecksum(v1::ChecksumAlgorithm algorithm,
                            const Payload& data, absl::string_view expected,
                            absl::string_view what);

}  // namespace dst

#endif  // DST_SERVICES_COMMON_PROTOCOL_CHECKSUM_H_
