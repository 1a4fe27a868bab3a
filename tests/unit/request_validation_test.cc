// Every field of a request checked against the geometry, with the precise
// status each mistake deserves.
#include "services/common/protocol/request_validation.h"

#include <gtest/gtest.h>

namespace dst {
namespace {

v1::Geometry MakeGeometry() {
  v1::Geometry g;
  g.set_size(1 << 20);
  g.set_logical_block_size(512);
  g.set_physical_block_size(4096);
  g.set_max_transfer(64 << 10);
  g.set_features(v1::FEATURE_FLUSH | v1::FEATURE_FUA | v1::FEATURE_TRIM |
                 v1::FEATURE_WRITE_ZEROES | v1::FEATURE_CHECKSUM_CRC32C);
  return g;
}

v1::Request Make(v1::Op op, uint64_t offset, uint32_t length) {
  v1::Request r;
  r.set_op(op);
  r.set_offset(offset);
  r.set_length(length);
  if (op == v1::OP_WRITE) r.set_data(std::string(length, 'a'));
  return r;
}

absl::StatusCode Code(const v1::Request& r, bool read_only = false) {
  return ValidateRequest(r, r.data().size(), MakeGeometry(), read_only).code();
}

TEST(RequestValidationTest, AcceptsWellFormedRequests) {
  EXPECT_EQ(Code(Make(v1::OP_READ, 0, 512)), absl::StatusCode::kOk);
  EXPECT_EQ(Code(Make(v1::OP_WRITE, (1 << 20) - 512, 512)),
            absl::StatusCode::kOk)
      << "the last block";
  EXPECT_EQ(Code(Make(v1::OP_TRIM, 0, 1 << 20)), absl::StatusCode::kOk)
      << "trim is not bound by max_transfer";
  EXPECT_EQ(Code(Make(v1::OP_FLUSH, 0, 0)), absl::StatusCode::kOk);
  EXPECT_EQ(Code(Make(v1::OP_PING, 0, 0)), absl::StatusCode::kOk);
}

TEST(RequestValidationTest, RefusesPastTheEnd) {
  EXPECT_EQ(Code(Make(v1::OP_READ, 1 << 20, 512)),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(Code(Make(v1::OP_WRITE, (1 << 20) - 512, 1024)),
            absl::StatusCode::kOutOfRange);
}

TEST(RequestValidationTest, RefusesOffsetOverflow) {
  // offset + length wraps around to 0: must still be past the end.
  EXPECT_EQ(Code(Make(v1::OP_READ, UINT64_MAX - 511, 512)),
            absl::StatusCode::kOutOfRange);
}

TEST(RequestValidationTest, RefusesMisalignment) {
  EXPECT_EQ(Code(Make(v1::OP_READ, 100, 512)),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(Make(v1::OP_READ, 0, 100)),
            absl::StatusCode::kInvalidArgument);
}

TEST(RequestValidationTest, RefusesOversizedTransfers) {
  EXPECT_EQ(Code(Make(v1::OP_READ, 0, 128 << 10)),
            absl::StatusCode::kInvalidArgument);
}

TEST(RequestValidationTest, RefusesZeroLengthAndDataMismatch) {
  EXPECT_EQ(Code(Make(v1::OP_READ, 0, 0)), absl::StatusCode::kInvalidArgument);
  v1::Request w = Make(v1::OP_WRITE, 0, 512);
  w.mutable_data()->pop_back();
  EXPECT_EQ(Code(w), absl::StatusCode::kInvalidArgument);
  v1::Request r = Make(v1::OP_READ, 0, 512);
  r.set_data("x");
  EXPECT_EQ(Code(r), absl::StatusCode::kInvalidArgument);
  v1::Request f = Make(v1::OP_FLUSH, 0, 0);
  f.set_length(512);
  EXPECT_EQ(Code(f), absl::StatusCode::kInvalidArgument);
}

TEST(RequestValidationTest, RefusesUnknownOpsAndFlags) {
  EXPECT_EQ(Code(Make(v1::OP_UNSPECIFIED, 0, 512)),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(Make(static_cast<v1::Op>(99), 0, 512)),
            absl::StatusCode::kInvalidArgument);
  v1::Request r = Make(v1::OP_READ, 0, 512);
  r.set_flags(0x80);
  EXPECT_EQ(Code(r), absl::StatusCode::kInvalidArgument);
}

TEST(RequestValidationTest, ReadOnlyRefusesEveryModification) {
  EXPECT_EQ(Code(Make(v1::OP_READ, 0, 512), true), absl::StatusCode::kOk);
  EXPECT_EQ(Code(Make(v1::OP_FLUSH, 0, 0), true), absl::StatusCode::kOk);
  for (v1::Op op : {v1::OP_WRITE, v1::OP_WRITE_ZEROES, v1::OP_TRIM}) {
    EXPECT_EQ(Code(Make(op, 0, 512), true),
              absl::StatusCode::kFailedPrecondition)
        << v1::Op_Name(op);
  }
}

TEST(RequestValidationTest, RefusesUnsupportedFeatures) {
  v1::Geometry g = MakeGeometry();
  g.set_features(0);
  EXPECT_EQ(ValidateRequest(Make(v1::OP_TRIM, 0, 512), 0, g, false).code(),
            absl::StatusCode::kUnimplemented);
  EXPECT_EQ(ValidateRequest(Make(v1::OP_FLUSH, 0, 0), 0, g, false).code(),
            absl::StatusCode::kUnimplemented);
  v1::Request fua = Make(v1::OP_WRITE, 0, 512);
  fua.set_flags(v1::REQUEST_FLAG_FUA);
  EXPECT_EQ(ValidateRequest(fua, 512, g, false).code(),
            absl::StatusCode::kUnimplemented);
}

TEST(RequestValidationTest, BlockStatusNeedsItsFeatureAndARangeInside) {
  v1::Geometry g = MakeGeometry();
  EXPECT_EQ(
      ValidateRequest(Make(v1::OP_BLOCK_STATUS, 0, 512), 0, g, false).code(),
      absl::StatusCode::kUnimplemented)
      << "not advertised";
  g.set_features(g.features() | v1::FEATURE_BLOCK_STATUS);
  EXPECT_EQ(
      ValidateRequest(Make(v1::OP_BLOCK_STATUS, 0, 1 << 20), 0, g, true).code(),
      absl::StatusCode::kOk)
      << "the whole export in one query (not bound by max_transfer), and "
         "read-only access may ask";
  EXPECT_EQ(
      ValidateRequest(Make(v1::OP_BLOCK_STATUS, 512, 1 << 20), 0, g, false)
          .code(),
      absl::StatusCode::kOutOfRange);
  EXPECT_EQ(
      ValidateRequest(Make(v1::OP_BLOCK_STATUS, 0, 0), 0, g, false).code(),
      absl::StatusCode::kInvalidArgument);
}

TEST(RequestValidationTest, FastZeroIsForWriteZeroesWithItsFeature) {
  v1::Geometry g = MakeGeometry();
  v1::Request zero = Make(v1::OP_WRITE_ZEROES, 0, 4096);
  zero.set_flags(v1::REQUEST_FLAG_FAST_ZERO);
  EXPECT_EQ(ValidateRequest(zero, 0, g, false).code(),
            absl::StatusCode::kUnimplemented)
      << "not advertised";
  g.set_features(g.features() | v1::FEATURE_FAST_ZERO);
  EXPECT_TRUE(ValidateRequest(zero, 0, g, false).ok());
  zero.set_flags(v1::REQUEST_FLAG_FAST_ZERO | v1::REQUEST_FLAG_NO_HOLE);
  EXPECT_TRUE(ValidateRequest(zero, 0, g, false).ok());
  v1::Request trim = Make(v1::OP_TRIM, 0, 4096);
  trim.set_flags(v1::REQUEST_FLAG_FAST_ZERO);
  EXPECT_EQ(ValidateRequest(trim, 0, g, false).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RequestValidationTest, GeometryChecks) {
  EXPECT_TRUE(ValidateGeometry(MakeGeometry()).ok());
  v1::Geometry g = MakeGeometry();
  g.set_logical_block_size(500);
  EXPECT_FALSE(ValidateGeometry(g).ok());
  g = MakeGeometry();
  g.set_size(1000);
  EXPECT_FALSE(ValidateGeometry(g).ok());
  g = MakeGeometry();
  g.set_max_transfer(0);
  EXPECT_FALSE(ValidateGeometry(g).ok());
}

TEST(RequestValidationTest, ChecksumFieldsAreChecked) {
  v1::Request write = Make(v1::OP_WRITE, 0, 512);
  write.set_checksum_algorithm(v1::CHECKSUM_CRC32C);
  write.set_checksum("1234");
  EXPECT_EQ(Code(write), absl::StatusCode::kOk) << "digests are checked later";
  write.set_checksum("12345");
  EXPECT_EQ(Code(write), absl::StatusCode::kInvalidArgument) << "wrong size";
  write.set_checksum_algorithm(v1::CHECKSUM_SHA256);
  EXPECT_EQ(Code(write), absl::StatusCode::kUnimplemented) << "not advertised";
  write.set_checksum_algorithm(static_cast<v1::ChecksumAlgorithm>(9));
  EXPECT_EQ(Code(write), absl::StatusCode::kInvalidArgument);
  v1::Request read = Make(v1::OP_READ, 0, 512);
  read.set_checksum_algorithm(v1::CHECKSUM_CRC32C);
  EXPECT_EQ(Code(read), absl::StatusCode::kOk);
  read.set_checksum("1234");
  EXPECT_EQ(Code(read), absl::StatusCode::kInvalidArgument)
      << "only writes carry one";
}

}  // namespace
}  // namespace dst
