// CRC32C and SHA-256 digests: see checksum.h.
#include "services/common/protocol/checksum.h"

#include <array>
#include <memory>

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
// One dependency chain: the crc32 instruction has a latency of 3 cycles and
// a throughput of 1 per cycle, so this runs at a third of what the unit
// can do. Crc32cHardware runs three chains side by side.
__attribute__((target("sse4.2"))) uint32_t Crc32cSerial(const unsigned char* p,
                                                        size_t n,
                                                        uint32_t crc) {
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

// Bytes per chain in Crc32cHardware's interleaved blocks.
constexpr size_t kStride = 1024;

// Without the inversions a CRC is linear: crc(c, A||B) = shift(crc(c, A),
// |B|) ^ crc(0, B), where shift(c, n) = crc(c, n zero bytes). Shifting by
// kStride is a linear map on 32 bits, kept as one table per byte of c.
struct StrideShift {
  uint32_t table[4][256];
  StrideShift() {
    static const unsigned char zeros[kStride] = {};
    for (int j = 0; j < 4; ++j) {
      for (uint32_t v = 0; v < 256; ++v) {
        table[j][v] = Crc32cSerial(zeros, kStride, v << (8 * j));
      }
    }
  }
  uint32_t operator()(uint32_t c) const {
    return table[0][c & 0xff] ^ table[1][(c >> 8) & 0xff] ^
           table[2][(c >> 16) & 0xff] ^ table[3][c >> 24];
  }
};

__attribute__((target("sse4.2"))) uint32_t Crc32cHardware(
    const unsigned char* p, size_t n, uint32_t crc) {
  if (n >= 3 * kStride) {
    static const StrideShift shift;
    while (n >= 3 * kStride) {
      uint64_t c0 = crc;
      uint64_t c1 = 0;
      uint64_t c2 = 0;
      for (size_t i = 0; i < kStride; i += 8) {
        uint64_t w0, w1, w2;
        __builtin_memcpy(&w0, p + i, 8);
        __builtin_memcpy(&w1, p + kStride + i, 8);
        __builtin_memcpy(&w2, p + 2 * kStride + i, 8);
        c0 = __builtin_ia32_crc32di(c0, w0);
        c1 = __builtin_ia32_crc32di(c1, w1);
        c2 = __builtin_ia32_crc32di(c2, w2);
      }
      crc =
          shift(shift(static_cast<uint32_t>(c0)) ^ static_cast<uint32_t>(c1)) ^
          static_cast<uint32_t>(c2);
      p += 3 * kStride;
      n -= 3 * kStride;
    }
  }
  return Crc32cSerial(p, n, crc);
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
