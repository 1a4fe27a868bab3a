// CRC32C and SHA-256 digests: see checksum.h.
#include "services/common/protocol/checksum.h"

#include <algorithm>
#include <array>
#include <limits>
#include <memory>

#include <isa-l/crc.h>
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
  // ISA-L picks the fastest code the CPU runs (PCLMULQDQ folding, AVX-512
  // where there is one) and leaves the inversions to its caller. Its
  // prototype lacks const; it only reads.
  auto* p = reinterpret_cast<unsigned char*>(const_cast<char*>(data.data()));
  size_t n = data.size();
  crc = ~crc;
  while (n > 0) {
    const int chunk =
        static_cast<int>(std::min<size_t>(n, std::numeric_limits<int>::max()));
    crc = crc32_iscsi(p, chunk, crc);
    p += chunk;
    n -= static_cast<size_t>(chunk);
  }
  return ~crc;
}

uint32_t Crc32cPortable(absl::string_view data, uint32_t crc) {
  return ~Crc32cTable(reinterpret_cast<const unsigned char*>(data.data()),
                      data.size(), ~crc);
}

namespace {

// The digest of the bytes that `for_each_piece(fn)` passes to fn, piece by
// piece.
template <class ForEachPiece>
std::string Digest(v1::ChecksumAlgorithm algorithm,
                   const ForEachPiece& for_each_piece) {
  switch (algorithm) {
    case v1::CHECKSUM_CRC32C: {
      uint32_t crc = 0;
      for_each_piece(
          [&crc](absl::string_view piece) { crc = Crc32c(piece, crc); });
      return std::string{static_cast<char>(crc >> 24),
                         static_cast<char>(crc >> 16),
                         static_cast<char>(crc >> 8), static_cast<char>(crc)};
    }
    case v1::CHECKSUM_SHA256: {
      std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(
          EVP_MD_CTX_new(), EVP_MD_CTX_free);
      if (context == nullptr ||
          EVP_DigestInit_ex(context.get(), EVP_sha256(), nullptr) != 1) {
        return "";
      }
      bool ok = true;
      for_each_piece([&](absl::string_view piece) {
        ok = ok &&
             EVP_DigestUpdate(context.get(), piece.data(), piece.size()) == 1;
      });
      std::string digest(EVP_MAX_MD_SIZE, '\0');
      unsigned int size = 0;
      if (!ok ||
          EVP_DigestFinal_ex(context.get(),
                             reinterpret_cast<unsigned char*>(digest.data()),
                             &size) != 1) {
        return "";
      }
      digest.resize(size);
      return digest;
    }
    default:
      return "";
  }
}

absl::Status Mismatch(v1::ChecksumAlgorithm algorithm, absl::string_view what) {
  return absl::DataLossError(absl::StrCat(ChecksumName(algorithm),
                                          " checksum mismatch: ", what,
                                          " was damaged on its way"));
}

}  // namespace

std::string ComputeChecksum(v1::ChecksumAlgorithm algorithm,
                            absl::string_view data) {
  return Digest(algorithm, [data](const auto& fn) { fn(data); });
}

std::string ComputeChecksum(v1::ChecksumAlgorithm algorithm,
                            const Payload& data) {
  return Digest(algorithm, [&data](const auto& fn) { data.ForEachPiece(fn); });
}

absl::Status VerifyChecksum(v1::ChecksumAlgorithm algorithm,
                            absl::string_view data, absl::string_view expected,
                            absl::string_view what) {
  if (ComputeChecksum(algorithm, data) == expected) return absl::OkStatus();
  return Mismatch(algorithm, what);
}

absl::Status VerifyChecksum(v1::ChecksumAlgorithm algorithm,
                            const Payload& data, absl::string_view expected,
                            absl::string_view what) {
  if (ComputeChecksum(algorithm, data) == expected) return absl::OkStatus();
  return Mismatch(algorithm, what);
}

}  // namespace dst
