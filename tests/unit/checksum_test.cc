// Checksums: known vectors for CRC32C (ISA-L and the table agree with
// them) and SHA-256, sizes and features, and mismatches as DATA_LOSS.
#include "services/common/protocol/checksum.h"

#include <gtest/gtest.h>

#include "absl/strings/escaping.h"

namespace dst {
namespace {

TEST(ChecksumTest, Crc32cKnownVectors) {
  EXPECT_EQ(Crc32c(""), 0u);
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  // Odd lengths and offsets cross the 8-byte hardware steps.
  const std::string text = "The quick brown fox jumps over the lazy dog";
  EXPECT_EQ(Crc32c(text), 0x22620404u);
  EXPECT_EQ(Crc32c(text.substr(9), Crc32c(text.substr(0, 9))), Crc32c(text))
      << "incremental";
}

// ISA-L runs different code for short, folded and long inputs; every length
// and alignment around their edges must give what the table gives.
TEST(ChecksumTest, Crc32cAgreesWithTheTableAtEveryLengthAndAlignment) {
  std::string data(3 * 3072 + 64, '\0');
  uint32_t seed = 12345;
  for (char& c : data) {
    seed = seed * 1103515245u + 12345u;
    c = static_cast<char>(seed >> 24);
  }
  const absl::string_view all(data);
  for (size_t offset : {0, 1, 3, 8}) {
    for (size_t length = 0; length + offset <= data.size(); length += 7) {
      const absl::string_view piece = all.substr(offset, length);
      ASSERT_EQ(Crc32c(piece), Crc32cPortable(piece))
          << "offset " << offset << " length " << length;
    }
  }
  for (size_t length : {3071, 3072, 3073, 6144, 9216, 9217}) {
    EXPECT_EQ(Crc32c(all.substr(0, length), 0xdeadbeef),
              Crc32cPortable(all.substr(0, length), 0xdeadbeef))
        << "length " << length << " with a running crc";
  }
  const std::string mib(1 << 20, 'x');
  EXPECT_EQ(Crc32c(mib), Crc32cPortable(mib));
}

TEST(ChecksumTest, DigestsHaveTheirSizesAndBigEndianCrc) {
  EXPECT_EQ(
      absl::BytesToHexString(ComputeChecksum(v1::CHECKSUM_CRC32C, "123456789")),
      "e3069283");
  EXPECT_EQ(absl::BytesToHexString(ComputeChecksum(v1::CHECKSUM_SHA256, "abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(ChecksumSize(v1::CHECKSUM_CRC32C), 4u);
  EXPECT_EQ(ChecksumSize(v1::CHECKSUM_SHA256), 32u);
  EXPECT_EQ(ChecksumSize(v1::CHECKSUM_NONE), 0u);
  EXPECT_EQ(ChecksumFeature(v1::CHECKSUM_SHA256),
            static_cast<uint32_t>(v1::FEATURE_CHECKSUM_SHA256));
  EXPECT_EQ(ComputeChecksum(v1::CHECKSUM_NONE, "x"), "");
}

TEST(ChecksumTest, MismatchIsDataLoss) {
  const std::string good = ComputeChecksum(v1::CHECKSUM_CRC32C, "data");
  EXPECT_TRUE(VerifyChecksum(v1::CHECKSUM_CRC32C, "data", good, "x").ok());
  absl::Status bad = VerifyChecksum(v1::CHECKSUM_CRC32C, "dato", good, "x");
  EXPECT_TRUE(absl::IsDataLoss(bad));
  EXPECT_NE(bad.message().find("crc32c checksum mismatch"), std::string::npos);
}

}  // namespace
}  // namespace dst
