// Outgoing batches: their bytes parse as the generated RequestBatch and
// ReplyBatch, and large payloads reach gRPC as the payload's own bytes.
#include "services/common/outgoing_batch.h"

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
    batch.Add(Write(i + 1, payloads[i]));
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
  auto payload = std::make_shared<const std::string>(1 << 20, 'p');
  v1::Reply reply;
  reply.set_id(7);
  reply.set_checksum("wxyz");
  OutgoingReplies batch;
  batch.Add(reply, payload);
  v1::Reply small = reply;
  small.set_id(8);
  small.set_data("tiny");
  batch.Add(small);
  grpc::ByteBuffer buffer;
  ASSERT_TRUE(batch.Serialize(&buffer).ok());
  std::vector<grpc::Slice> slices;
  v1::ReplyBatch parsed;
  ASSERT_TRUE(parsed.ParseFromString(Flatten(buffer, &slices)));
  ASSERT_EQ(parsed.replies_size(), 2);
  EXPECT_EQ(parsed.replies(0).data(), *payload);
  EXPECT_EQ(parsed.replies(0).checksum(), "wxyz");
  EXPECT_EQ(parsed.replies(1).data(), "tiny");
  bool shared = false;
  for (const grpc::Slice& slice : slices) {
    if (static_cast<const void*>(slice.begin()) == payload->data()) {
      shared = true;
      EXPECT_EQ(slice.size(), payload->size());
    }
  }
  EXPECT_TRUE(shared) << "the payload was copied into the message";
  // The buffer holds a reference until it is gone.
  EXPECT_GT(payload.use_count(), 1);
  slices.clear();
  buffer.Clear();
  batch.Clear();
  EXPECT_EQ(payload.use_count(), 1);
}

TEST(OutgoingBatchTest, AddMovesLargeDataIntoASharedPayload) {
  std::string data(kSlicedPayloadBytes, 'm');
  const char* bytes = data.data();
  v1::Request request = Write(1, std::move(data));
  OutgoingRequests batch;
  batch.Add(std::move(request));
  EXPECT_TRUE(batch.item(0).data().empty());
  grpc::ByteBuffer buffer;
  ASSERT_TRUE(batch.Serialize(&buffer).ok());
  std::vector<grpc::Slice> slices;
  Flatten(buffer, &slices);
  bool shared = false;
  for (const grpc::Slice& slice : slices) {
    shared |= static_cast<const void*>(slice.begin()) == bytes;
  }
  EXPECT_TRUE(shared) << "the data was copied, not moved";
}

}  // namespace
}  // namespace dst
