// Incoming batches: whatever the generated parser accepts as a batch (in
// whatever slices it arrives), IncomingBatch reads the same items, with
// each item's data as its payload; large payloads are the received bytes
// themselves; what does not parse is refused with a reason.
#include "services/common/transport/incoming_batch.h"

#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/message_differencer.h"

#include "services/common/transport/outgoing_batch.h"

namespace dst {
namespace {

using google::protobuf::util::MessageDifferencer;

v1::Request Write(uint64_t id, std::string data) {
  v1::Request request;
  request.set_id(id);
  request.set_op(v1::OP_WRITE);
  request.set_offset(id * 4096);
  request.set_length(static_cast<uint32_t>(data.size()));
  request.set_data(std::move(data));
  request.set_checksum_algorithm(v1::CHECKSUM_CRC32C);
  request.set_checksum("abcd");
  (*request.mutable_attributes())["k"] = "v";
  return request;
}

// `bytes` cut into slices of `piece` bytes (the last one shorter).
std::vector<grpc::Slice> Cut(const std::string& bytes, size_t piece) {
  std::vector<grpc::Slice> slices;
  for (size_t at = 0; at < bytes.size(); at += piece) {
    const size_t n = std::min(piece, bytes.size() - at);
    slices.emplace_back(bytes.data() + at, n);
  }
  return slices;
}

// What IncomingBatch read, with each payload put back into its item, for
// comparing with the generated parser's result.
v1::RequestBatch RejoinRequests(IncomingRequests& in) {
  v1::RequestBatch out;
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_TRUE(in.item(i).data().empty()) << "the data stays in the payload";
    v1::Request* item = out.add_requests();
    *item = in.item(i);
    item->set_data(in.data(i).ToString());
  }
  return out;
}

TEST(IncomingBatchTest, ReadsWhatTheGeneratedCodeWritesInAnySlices) {
  v1::RequestBatch batch;
  *batch.add_requests() = Write(1, std::string(4096, 'a'));
  *batch.add_requests() = Write(2, std::string(kSlicedPayloadBytes, 'b'));
  v1::Request read;
  read.set_id(3);
  read.set_op(v1::OP_READ);
  read.set_length(512);
  *batch.add_requests() = read;
  *batch.add_requests() = Write(4, std::string((1 << 20) + 3, 'c'));
  *batch.add_requests() = Write(5, "");
  const std::string bytes = batch.SerializeAsString();
  // One slice, tiny pieces that split every varint, and sizes between.
  for (size_t piece : {bytes.size(), size_t{1}, size_t{7}, size_t{4096},
                       size_t{16384}, size_t{65537}}) {
    IncomingRequests in;
    ASSERT_TRUE(in.Parse(Cut(bytes, piece)).ok()) << "pieces of " << piece;
    ASSERT_EQ(in.size(), 5u);
    EXPECT_EQ(in.data(1).size(), size_t{kSlicedPayloadBytes});
    EXPECT_TRUE(in.data(2).empty());
    EXPECT_TRUE(in.data(4).empty());
    v1::RequestBatch rejoined = RejoinRequests(in);
    EXPECT_TRUE(MessageDifferencer::Equals(rejoined, batch))
        << "pieces of " << piece;
  }
}

TEST(IncomingBatchTest, ALargePayloadIsTheReceivedBytes) {
  OutgoingReplies out;
  v1::Reply reply;
  reply.set_id(9);
  reply.set_checksum("wxyz");
  const std::string data(1 << 20, 'r');
  out.Add(reply, Payload(std::string(data)));
  grpc::ByteBuffer buffer;
  ASSERT_TRUE(out.Serialize(&buffer).ok());
  std::vector<grpc::Slice> flat;
  ASSERT_TRUE(buffer.Dump(&flat).ok());
  std::string bytes;
  for (const grpc::Slice& s : flat) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  // As a transport delivers it: in frames of 16 KiB.
  const std::vector<grpc::Slice> received = Cut(bytes, 16384);
  IncomingReplies in;
  ASSERT_TRUE(in.Parse(received).ok());
  ASSERT_EQ(in.size(), 1u);
  EXPECT_EQ(in.item(0).id(), 9u);
  EXPECT_EQ(in.item(0).checksum(), "wxyz");
  EXPECT_TRUE(in.item(0).data().empty());
  EXPECT_EQ(in.data(0).ToString(), data);
  // Every piece of the payload lies inside a received slice (but a tiny
  // one, which gRPC keeps inside the slice's handle: a copy of no cost).
  size_t pieces = 0;
  in.data(0).ForEachPiece([&](absl::string_view piece) {
    ++pieces;
    if (piece.size() <= GRPC_SLICE_INLINED_SIZE) return;
    bool inside = false;
    for (const grpc::Slice& s : received) {
      const char* begin = reinterpret_cast<const char*>(s.begin());
      inside |= piece.data() >= begin &&
                piece.data() + piece.size() <= begin + s.size();
    }
    EXPECT_TRUE(inside) << "a piece of the payload was copied";
  });
  EXPECT_GE(pieces, 64u);
}

TEST(IncomingBatchTest, TheLastDataFieldWinsAndOtherFieldsKeepTheirValues) {
  // A large item whose data comes first, then again, then other fields:
  // the generated parser keeps the last data; so must the scan.
  v1::Request header = Write(7, "");
  std::string item;
  v1::Request first;
  first.set_data(std::string(kSlicedPayloadBytes, 'x'));
  item += first.SerializeAsString();
  item += header.SerializeAsString();
  v1::Request second;
  second.set_data(std::string(kSlicedPayloadBytes + 1, 'y'));
  item += second.SerializeAsString();
  v1::Request expected;
  ASSERT_TRUE(expected.ParseFromString(item));
  v1::RequestBatch batch;
  *batch.add_requests() = expected;
  IncomingRequests in;
  ASSERT_TRUE(in.Parse(Cut(batch.SerializeAsString(), 1000)).ok());
  v1::RequestBatch rejoined = RejoinRequests(in);
  EXPECT_TRUE(MessageDifferencer::Equals(rejoined, batch));
  EXPECT_EQ(in.data(0).size(), kSlicedPayloadBytes + 1);
}

TEST(IncomingBatchTest, AgreesWithTheGeneratedParserOnEveryTruncation) {
  v1::RequestBatch batch;
  *batch.add_requests() = Write(1, std::string(100, 'a'));
  *batch.add_requests() = Write(2, std::string(kSlicedPayloadBytes, 'b'));
  const std::string bytes = batch.SerializeAsString();
  // Every cut in the small item and the large one's header, then a sample
  // through its payload.
  std::vector<size_t> cuts;
  for (size_t n = 0; n < 400; ++n) cuts.push_back(n);
  for (size_t n = 400; n <= bytes.size(); n += 997) cuts.push_back(n);
  cuts.push_back(bytes.size() - 1);
  cuts.push_back(bytes.size());
  for (size_t n : cuts) {
    const std::string prefix = bytes.substr(0, n);
    v1::RequestBatch generated;
    const bool generated_ok = generated.ParseFromString(prefix);
    IncomingRequests in;
    const absl::Status status = in.Parse(Cut(prefix, 333));
    ASSERT_EQ(status.ok(), generated_ok) << "cut at " << n << ": " << status;
    if (status.ok()) {
      v1::RequestBatch rejoined = RejoinRequests(in);
      EXPECT_TRUE(MessageDifferencer::Equals(rejoined, generated))
          << "cut at " << n;
    } else {
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
      EXPECT_EQ(in.size(), 0u) << "a refused batch leaves nothing behind";
    }
  }
}

TEST(IncomingBatchTest, RefusesWhatIsNotABatch) {
  struct Case {
    const char* what;
    std::string bytes;
  };
  const std::vector<Case> cases = {
      {"an item longer than the batch", std::string("\x0a\x05\x08", 3)},
      {"a varint of eleven bytes", std::string(11, '\xff')},
      {"an end-group tag", std::string("\x0c", 1)},
  };
  for (const Case& c : cases) {
    v1::RequestBatch generated;
    EXPECT_FALSE(generated.ParseFromString(c.bytes)) << c.what;
    IncomingRequests in;
    absl::Status status = in.Parse(Cut(c.bytes, 1));
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_NE(status.message().find("malformed transaction batch"),
              std::string::npos)
        << status;
  }
  // A large item with a field of no valid wire type inside.
  std::string item =
      Write(1, std::string(kSlicedPayloadBytes, 'z')).SerializeAsString();
  item += std::string("\x0f\x00", 2);  // field 1, wire type 7
  std::string bytes = "\x0a";
  google::protobuf::io::StringOutputStream out(&bytes);
  {
    google::protobuf::io::CodedOutputStream coded(&out);
    coded.WriteVarint32(static_cast<uint32_t>(item.size()));
  }
  bytes += item;
  v1::RequestBatch generated;
  EXPECT_FALSE(generated.ParseFromString(bytes));
  IncomingRequests in;
  EXPECT_EQ(in.Parse(Cut(bytes, 4096)).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(IncomingBatchTest, SkipsTheBatchsUnknownFieldsAsProtobufDoes) {
  v1::RequestBatch batch;
  *batch.add_requests() = Write(1, "abc");
  std::string bytes = batch.SerializeAsString();
  bytes += std::string("\x10\x05", 2);              // field 2, varint
  bytes += std::string("\x1a\x02zz", 4);            // field 3, 2 bytes
  bytes += std::string("\x25\x01\x02\x03\x04", 5);  // field 4, fixed32
  bytes += std::string("\x08\x01", 2);  // field 1 (items) as a varint
  v1::RequestBatch generated;
  ASSERT_TRUE(generated.ParseFromString(bytes));
  IncomingRequests in;
  ASSERT_TRUE(in.Parse(Cut(bytes, 3)).ok());
  ASSERT_EQ(in.size(), 1u);
  EXPECT_EQ(in.data(0).ToString(), "abc");
}

}  // namespace
}  // namespace dst
