// CRC32C and SHA-256 digests: see checksum.h.
#include "services/common/checksum.h"

#include <array>

#include <openssl/evp.h>

#include "absl/strings/str_cat.h"

namespace dst {

namespace {

constexpr uint32_t kCastagnoli = 0x82F63B78;  // reflected polynomial

std::array<uint32_t, 256> MakeTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc >> 1) ^ ((crc & 1) ? kCastagnoli : 0);
    }
    table[i] = crc;
  }
  return table;
}

uint32_t Crc32cTable(const unsigned char* p, size_t n, uint32_t crc) {
  static const std::array<uint32_t, 256> table = MakeTable();
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t Crc32cHardware(
    const unsigned char* p, size_t n, uint32_t crc) {
  uint64_t c = crc;
  while (n >= 8) {
    uint64_t word;
    __builtin_memcpy(&word, p, 8);
    c = __builtin_ia32_crc32di(c, word);
    p += 8;
    n -= 8;
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  while (n-- > 0) c32 = __builtin_ia32_crc32qi(c32, *p++);
  return c32;
}
#endif

}  // namespace

size_t ChecksumSize(v1::ChecksumAlgorithm algorithm) {
  switch (algorithm) {
    case v1::CHECKSUM_CRC32C:
      return 4;
    case v1::CHECKSUM_SHA256:
      return 32;
    default:
      return 0;
  }
}

uint32_t ChecksumFeature(v1::ChecksumAlgorithm algorithm) {
  switch (algorithm) {
    case v1::CHECKSUM_CRC32C:
      return v1::FEATURE_CHECKSUM_CRC32C;
    case v1::CHECKSUM_SHA256:
      return v1::FEATURE_CHECKSUM_SHA256;
    default:
      return 0;
  }
}

std::string ChecksumName(v1::ChecksumAlgorithm algorithm) {
  switch (algorithm) {
    case v1::CHECKSUM_CRC32C:
      return "crc32c";
    case v1::CHECKSUM_SHA256:
      return "sha256";
    default:
      return "none";
  }
}

uint32_t Crc32c(absl::string_view data, uint32_t crc) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  crc = ~crc;
#if defined(__x86_64__)
  static const bool hardware = __builtin_cpu_supports("sse4.2");
  crc = hardware ? Crc32cHardware(p, data.size(), crc)
                 : Crc32cTable(p, data.size(), crc);
#else
  crc = Crc32cTable(p, data.size(), crc);
#endif
  return ~crc;
}

std::string ComputeChecksum(v1::ChecksumAlgorithm algorithm,
                            absl::string_view data) {
  switch (algorithm) {
    case v1::CHECKSUM_CRC32C: {
      const uint32_t crc = Crc32c(data);
      return std::string{static_cast<char>(crc >> 24),
                         static_cast<char>(crc >> 16),
                         static_cast<char>(crc >> 8), static_cast<char>(crc)};
    }
    case v1::CHECKSUM_SHA256: {
      std::string digest(EVP_MAX_MD_SIZE, '\0');
      unsigned int size = 0;
      if (EVP_Digest(data.data(), data.size(),
                     reinterpret_cast<unsigned char*>(digest.data()), &size,
                     EVP_sha256(), nullptr) != 1) {
        return "";
      }
      digest.resize(size);
      return digest;
    }
    default:
      return "";
  }
}

absl::Status VerifyChecksum(v1::ChecksumAlgorithm algorithm,
                            absl::string_view data, absl::string_view expected,
                            absl::string_view what) {
  if (ComputeChecksum(algorithm, data) == expected) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat(ChecksumName(algorithm),
                                          " checksum mismatch: ", what,
                                          " was damaged on its way"));
}

}  // namespace dst
