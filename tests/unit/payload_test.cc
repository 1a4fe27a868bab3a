// Payloads: each way of making one holds the bytes it was given, copies
// share them, and a borrowed one says when the last copy is gone (the
// plugin then hands nbdkit's buffer back), slices given to gRPC included.
#include "services/common/transport/payload.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "dst/v1/exporter.pb.h"

namespace dst {
namespace {

std::string Pieces(const Payload& payload) {
  std::string joined;
  payload.ForEachPiece([&](absl::string_view piece) {
    joined += "[";
    joined.append(piece.data(), piece.size());
    joined += "]";
  });
  return joined;
}

TEST(PayloadTest, EachKindHoldsItsBytes) {
  EXPECT_TRUE(Payload().empty());
  EXPECT_TRUE(Payload(std::string()).empty());
  EXPECT_EQ(Payload(std::string("abc")).ToString(), "abc");
  EXPECT_EQ(Payload::Copy("xyz", 3).ToString(), "xyz");
  char* bytes = nullptr;
  Payload filled = Payload::Uninitialized(4, &bytes);
  ASSERT_NE(bytes, nullptr);
  const std::string fill = "fill";
  fill.copy(bytes, fill.size());
  EXPECT_EQ(filled.ToString(), "fill");
  Payload sliced =
      Payload::Share({grpc::Slice(std::string("ab")), grpc::Slice(),
                      grpc::Slice(std::string("c"))});
  EXPECT_EQ(sliced.size(), 3u);
  EXPECT_EQ(Pieces(sliced), "[ab][][c]");
  std::string out(3, '\0');
  sliced.CopyTo(out.data());
  EXPECT_EQ(out, "abc");
}

TEST(PayloadTest, AllZeroLooksAtEveryPiece) {
  EXPECT_TRUE(Payload().AllZero());
  EXPECT_TRUE(Payload(std::string(4096, '\0')).AllZero());
  std::string last(4096, '\0');
  last.back() = 1;
  EXPECT_FALSE(Payload(last).AllZero());
  EXPECT_FALSE(Payload(std::string("\x01\x01")).AllZero())
      << "equal neighbours, but not zero";
  EXPECT_TRUE(Payload::Share({grpc::Slice(std::string(3, '\0')), grpc::Slice(),
                              grpc::Slice(std::string(5, '\0'))})
                  .AllZero());
  EXPECT_FALSE(Payload::Share({grpc::Slice(std::string(3, '\0')),
                               grpc::Slice(std::string("\0\0z", 3))})
                   .AllZero());
}

TEST(PayloadTest, TakeDataMovesTheFieldOut) {
  v1::Request request;
  request.set_data(std::string(1000, 'd'));
  const char* where = request.data().data();
  Payload data = TakeData(&request);
  EXPECT_TRUE(request.data().empty());
  EXPECT_EQ(data.size(), 1000u);
  data.ForEachPiece([&](absl::string_view piece) {
    EXPECT_EQ(piece.data(), where) << "the bytes were copied, not moved";
  });
}

TEST(PayloadTest, ABorrowedPayloadIsReleasedWithItsLastCopy) {
  const std::string lent(1 << 20, 'l');
  int released = 0;
  Payload payload =
      Payload::Borrow(lent.data(), lent.size(), [&released] { ++released; });
  EXPECT_EQ(payload.ToString(), lent);
  Payload copy = payload;
  std::vector<grpc::Slice> slices;
  copy.ShareInto(&slices);  // as an outgoing batch gives it to gRPC
  ASSERT_EQ(slices.size(), 1u);
  EXPECT_EQ(static_cast<const void*>(slices[0].begin()), lent.data())
      << "the lent bytes were copied";
  payload = Payload();
  copy = Payload();
  EXPECT_EQ(released, 0) << "released while gRPC still held a slice";
  slices.clear();
  EXPECT_EQ(released, 1);
}

}  // namespace
}  // namespace dst
