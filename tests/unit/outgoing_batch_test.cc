// Outgoing batches: their bytes parse as the generated RequestBatch and
// ReplyBatch, and large payloads reach gRPC as the payload's own bytes,
// held until gRPC lets go of them.
#include "services/common/transport/outgoing_batch.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "google/protobuf/util/message_differencer.h"

namespace dst {
namespace {

std::string Flatten(const grpc::ByteBuffer& buffer,
                    std::vector<grpc::Slice>* slices) {
  EXPECT_TRUE(buffer.Dump(slices).ok());
  std::string bytes;
  for (const grpc::Slice& slice : *slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return bytes;
}

v1::Request Write(uint64_t id, std::string data) {
  v1::Request request;
  request.set_id(id);
  request.set_op(v1::OP_WRITE);
  request.set_offset(id * 4096);
  request.set_length(static_cast<uint32_t>(data.size()));
  request.set_data(std::move(data));
  request.set_checksum_algorithm(v1::CHECKSUM_CRC32C);
  request.set_checksum("abcd");
  return request;
}

TEST(OutgoingBatchTest, RequestsParseAsTheGeneratedBatch) {
  // Small, large, none, large at the end: every run boundary.
  const std::vector<std::string> payloads = {
      std::string(4096, 'a'), std::string(kSlicedPayloadBytes, 'b'), "",
      std::string(3 << 20, 'c')};
  OutgoingRequests batch;
  v1::RequestBatch expected;
  for (size_t i = 0; i < payloads.size(); ++i) {
    *expected.add_requests() = Write(i + 1, payloads[i]);
    v1::Request request = Write(i + 1, payloads[i]);
    Payload data = TakeData(&request);
    batch.Add(std::move(request), std::move(data));
  }
  grpc::ByteBuffer buffer;
  ASSERT_TRUE(batch.Serialize(&buffer).ok());
  std::vector<grpc::Slice> slices;
  v1::RequestBatch parsed;
  ASSERT_TRUE(parsed.ParseFromString(Flatten(buffer, &slices)));
  EXPECT_TRUE(
      google::protobuf::util::MessageDifferencer::Equals(parsed, expected))
      << parsed.ShortDebugString().substr(0, 400);
  EXPECT_EQ(buffer.Length(), expected.ByteSizeLong());
}

TEST(OutgoingBatchTest, ALargePayloadIsSharedNotCopied) {
  std::string bytes(1 << 20, 'p');
  const char* where = bytes.data();
  bool freed = false;
  {
    // A payload in a slice that says when it is freed.
    Payload payload = Payload::Share({grpc::Slice(
        bytes.data(), bytes.size(),
        [](void* flag) { *static_cast<bool*>(flag) = true; }, &freed)});
    v1::Reply reply;
    reply.set_id(7);
    reply.set_checksum("wxyz");
    OutgoingReplies batch;
    batch.Add(reply, payload);
    v1::Reply small = reply;
    small.set_id(8);
    batch.Add(small, Payload(std::string("tiny")));
    grpc::ByteBuffer buffer;
    ASSERT_TRUE(batch.Serialize(&buffer).ok());
    std::vector<grpc::Slice> slices;
    v1::ReplyBatch parsed;
    ASSERT_TRUE(parsed.ParseFromString(Flatten(buffer, &slices)));
    ASSERT_EQ(parsed.replies_size(), 2);
    EXPECT_EQ(parsed.replies(0).data(), bytes);
    EXPECT_EQ(parsed.replies(0).checksum(), "wxyz");
    EXPECT_EQ(parsed.replies(1).data(), "tiny");
    bool shared = false;
    for (const grpc::Slice& slice : slices) {
      if (static_cast<const void*>(slice.begin()) == where) {
        shared = true;
        EXPECT_EQ(slice.size(), bytes.size());
      }
    }
    EXPECT_TRUE(shared) << "the payload was copied into the message";
    payload = Payload();
    batch.Clear();
    EXPECT_FALSE(freed) << "the buffer holds a reference until it is gone";
  }
  EXPECT_TRUE(freed);
}

TEST(OutgoingBatchTest, AContiguousPayloadIsSharedWithItsOwnBytes) {
  std::string data(kSlicedPayloadBytes, 'm');
  const char* bytes = data.data();
  Payload payload(std::move(data));  // moved, not copied
  OutgoingRequests batch;
  v1::Request request = Write(1, "");
  request.set_length(kSlicedPayloadBytes);
  batch.Add(request, payload);
  grpc::ByteBuffer buffer;
  ASSERT_TRUE(batch.Serialize(&buffer).ok());
  std::vector<grpc::Slice> slices;
  Flatten(buffer, &slices);
  bool shared = false;
  for (const grpc::Slice& slice : slices) {
    shared |= static_cast<const void*>(slice.begin()) == bytes;
  }
  EXPECT_TRUE(shared) << "the data was copied, not shared";
}

}  // namespace
}  // namespace dst
