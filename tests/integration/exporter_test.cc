// The exporter in process: negotiation, many transactions in flight,
// precise refusals, read-only enforcement at the exporter, storage errors,
// late replies, and a stream that breaks.
#include <atomic>
#include <functional>
#include <future>
#include <thread>
#include <vector>

#include <grpcpp/alarm.h>
#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
#include "absl/synchronization/notification.h"
#include "prometheus/registry.h"

#include "services/common/base/limits.h"
#include "services/common/protocol/checksum.h"
#include "services/common/rpc/channel_args.h"
#include "services/common/rpc/completion_loop.h"
#include "services/common/transport/transaction_stream.h"
#include "tests/integration/test_cluster.h"

namespace dst {
namespace {

constexpr uint64_t kSize = 8 << 20;

std::shared_ptr<grpc::Channel> Channel(const std::string& address) {
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(),
                                   ClientChannelArguments(kMaxMessageBytes));
}

std::shared_ptr<v1::Exporter::Stub> Stub(
    const std::shared_ptr<grpc::Channel>& channel) {
  return v1::Exporter::NewStub(channel);
}

std::shared_ptr<v1::Exporter::Stub> Stub(const std::string& address) {
  return Stub(Channel(address));
}

std::unique_ptr<TransactionStream> OpenStream(
    const std::shared_ptr<grpc::Channel>& channel,
    const std::string& access = "rw", const std::string& epoch = "") {
  return std::make_unique<TransactionStream>(
      [channel, access, epoch](grpc::ClientContext* ctx,
                               grpc::CompletionQueue* cq) {
        ctx->AddMetadata("dst-access", access);
        if (!epoch.empty()) ctx->AddMetadata("dst-epoch", epoch);
        return PrepareTransactionStream(channel.get(), kExporterStreamMethod,
                                        ctx, cq);
      },
      TransactionStreamOptions());
}

v1::Request Op(v1::Op op) {
  v1::Request r;
  r.set_op(op);
  return r;
}

class ExporterTest : public ::testing::Test {
 protected:
  TempDir dir_;
};

TEST_F(ExporterTest, NegotiateReportsGeometry) {
  TestExporter exporter(dir_.path(), "e1", kSize);
  grpc::ClientContext context;
  v1::NegotiateRequest request;
  request.set_client_id("test");
  v1::NegotiateReply reply;
  ASSERT_TRUE(
      Stub(exporter.address())->Negotiate(&context, request, &reply).ok());
  EXPECT_EQ(reply.geometry().size(), kSize);
  EXPECT_EQ(reply.geometry().logical_block_size(), 512u);
  EXPECT_EQ(reply.geometry().identity(), "e1");
  EXPECT_FALSE(reply.geometry().read_only());
  EXPECT_TRUE(reply.geometry().features() & v1::FEATURE_FLUSH);
  EXPECT_TRUE(reply.geometry().features() & v1::FEATURE_BLOCK_STATUS);
}

// Block status: the export's holes and data, as its file has them (this
// test's directory is on /tmp: ext4 here), in a reply's extents.
TEST_F(ExporterTest, BlockStatusReportsTheExportsHolesAndData) {
  TestExporter exporter(dir_.path(), "e1", kSize);
  auto stream = OpenStream(Channel(exporter.address()));
  ASSERT_EQ(stream->Call(WriteRequest(65536, std::string(8192, 'd'))).status(),
            0);
  v1::Request status = Op(v1::OP_BLOCK_STATUS);
  status.set_length(1 << 20);
  v1::Reply reply = stream->Call(status);
  ASSERT_EQ(reply.status(), 0) << reply.message();
  ASSERT_EQ(reply.extents_size(), 3);
  const uint32_t hole_zero = v1::EXTENT_HOLE | v1::EXTENT_ZERO;
  EXPECT_EQ(reply.extents(0).length(), 65536u);
  EXPECT_EQ(reply.extents(0).flags(), hole_zero);
  EXPECT_EQ(reply.extents(1).length(), 8192u);
  EXPECT_EQ(reply.extents(1).flags(), 0u);
  EXPECT_EQ(reply.extents(2).length(), (1u << 20) - 65536 - 8192);
  EXPECT_EQ(reply.extents(2).flags(), hole_zero);

  v1::Request past = Op(v1::OP_BLOCK_STATUS);
  past.set_offset(kSize);
  past.set_length(4096);
  EXPECT_EQ(stream->Call(past).status(), grpc::StatusCode::OUT_OF_RANGE);
}

// A callback (run on the completion loop) that drops the last reference to
// its own stream: the stream must be deleted off the loop, since its
// destructor waits for the loop to finish the call. Deleted inline, the
// callback would never return and the reply below would not come.
TEST_F(ExporterTest, AStreamReleasedByItsOwnCallbackIsDeletedOffTheLoop) {
  TestExporter exporter(dir_.path(), "e1", kSize);
  std::shared_ptr<TransactionStream> stream =
      TransactionStream::Share(OpenStream(Channel(exporter.address())));
  std::promise<int> replied;
  TransactionStream* raw = stream.get();
  raw->Submit(Op(v1::OP_PING), [&replied, held = std::move(stream)](
                                   v1::Reply&& reply, Payload&&) mutable {
    const int status = reply.status();
    held.reset();  // the last reference, on the loop thread
    replied.set_value(status);
  });
  std::future<int> status = replied.get_future();
  ASSERT_EQ(status.wait_for(std::chrono::seconds(10)),
            std::future_status::ready);
  EXPECT_EQ(status.get(), 0);
  // The loop still serves other streams.
  EXPECT_EQ(
      OpenStream(Channel(exporter.address()))->Call(Op(v1::OP_PING)).status(),
      0);
}

// 500 writes then 500 reads in flight at once on one stream; every reply
// matches its request.
void ExpectManyInFlightMatch(const TestExporter& exporter) {
  auto stream = OpenStream(Channel(exporter.address()));
  constexpr int kCount = 500;
  std::vector<std::promise<v1::Reply>> replies(kCount);
  for (int i = 0; i < kCount; ++i) {
    stream->Submit(
        WriteRequest(uint64_t(i) * 4096, std::string(4096, char('A' + i % 26))),
        [&replies, i](v1::Reply&& r, Payload&&) {
          replies[i].set_value(std::move(r));
        });
  }
  for (auto& reply : replies) EXPECT_EQ(reply.get_future().get().status(), 0);
  std::vector<std::promise<v1::Reply>> reads(kCount);
  for (int i = 0; i < kCount; ++i) {
    stream->Submit(ReadRequest(uint64_t(i) * 4096, 4096),
                   [&reads, i](v1::Reply&& r, Payload&& data) {
                     r.set_data(data.ToString());
                     reads[i].set_value(std::move(r));
                   });
  }
  for (int i = 0; i < kCount; ++i) {
    v1::Reply reply = reads[i].get_future().get();
    ASSERT_EQ(reply.status(), 0) << reply.message();
    EXPECT_EQ(reply.data(), std::string(4096, char('A' + i % 26)))
        << "block " << i;
  }
  EXPECT_EQ(stream->late_replies(), 0u);
  EXPECT_EQ(stream->in_flight(), 0u);
}

// Runs `fn` on the process's completion loop (the client streams') while
// the loop is behind: it is held in another handler until `fn`'s completion
// is queued too, so `fn` runs with a completion ready before it.
void RunOnBusyLoop(const std::function<void()>& fn) {
  struct Run final : CompletionLoop::Tag {
    std::function<void()> run;
    void Proceed(bool) override { run(); }
  };
  absl::Notification release;
  absl::Notification ran;
  Run hold;
  hold.run = [&release] { release.WaitForNotification(); };
  Run submit;
  submit.run = [&] {
    fn();
    ran.Notify();
  };
  CompletionLoop& loop = CompletionLoop::Shared();
  grpc::Alarm hold_alarm;
  grpc::Alarm submit_alarm;
  hold_alarm.Set(loop.cq(), gpr_inf_past(GPR_CLOCK_MONOTONIC),
                 CompletionLoop::Hand(&hold));
  submit_alarm.Set(loop.cq(), gpr_inf_past(GPR_CLOCK_MONOTONIC),
                   CompletionLoop::Hand(&submit));
  release.Notify();
  ran.WaitForNotification();
}

// Submits one 4 KiB read per promise on the busy loop; each promise gets
// its reply's status.
void SubmitReadsOnBusyLoop(TransactionStream* stream,
                           std::vector<std::promise<int>>* replies) {
  RunOnBusyLoop([&] {
    for (size_t i = 0; i < replies->size(); ++i) {
      stream->Submit(ReadRequest(uint64_t(i) * 4096, 4096),
                     [replies, i](v1::Reply&& r, Payload&&) {
                       (*replies)[i].set_value(r.status());
                     });
    }
  });
}

// Requests submitted on the completion loop while it is behind go out in
// one message once it has caught up, not the first alone and the rest after
// it.
TEST_F(ExporterTest, RequestsSubmittedOnABusyLoopShareOneMessage) {
  TestExporter exporter(dir_.path(), "e1", kSize);
  auto stream = OpenStream(Channel(exporter.address()));
  ASSERT_EQ(stream->Call(Op(v1::OP_PING)).status(), 0);  // started
  const uint64_t written = stream->messages_written();
  std::vector<std::promise<int>> replies(20);
  SubmitReadsOnBusyLoop(stream.get(), &replies);
  for (auto& reply : replies) EXPECT_EQ(reply.get_future().get(), 0);
  EXPECT_EQ(stream->messages_written(), written + 1);
}

// The same on the exporter's side: replies completed on its loop while it
// is behind go out in one message. Its loop is held in a read of another
// stream (inline I/O on a stalled "memory") while this stream's requests
// arrive in one message; once released, that message is ready at once.
// The requests are sent only once the loop is held: the two streams'
// messages may reach the exporter in either order.
TEST_F(ExporterTest, RepliesCompletedOnABusyLoopShareOneMessage) {
  TestExporter exporter(dir_.path(), "e1", kSize);
  exporter.storage().acts_in_memory = true;
  auto holder = OpenStream(Channel(exporter.address()));
  auto stream = OpenStream(Channel(exporter.address()));
  ASSERT_EQ(holder->Call(Op(v1::OP_PING)).status(), 0);
  ASSERT_EQ(stream->Call(Op(v1::OP_PING)).status(), 0);
  const uint64_t read = stream->messages_read();
  const uint64_t written = stream->messages_written();
  exporter.storage().Hold();
  std::promise<int> held_reply;
  holder->Submit(ReadRequest(0, 4096), [&held_reply](v1::Reply&& r, Payload&&) {
    held_reply.set_value(r.status());
  });
  ASSERT_TRUE(exporter.storage().AwaitWaiting(1))
      << "the holder's read never reached the exporter's storage";
  std::vector<std::promise<int>> replies(20);
  SubmitReadsOnBusyLoop(stream.get(), &replies);
  for (int i = 0; i < 5000 && stream->messages_written() == written; ++i) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_EQ(stream->messages_written(), written + 1);
  // The write is in the exporter's socket well before this (a Unix socket
  // takes the bytes at once), while its loop is still held.
  absl::SleepFor(absl::Milliseconds(500));
  exporter.storage().Release();
  EXPECT_EQ(held_reply.get_future().get(), 0);
  for (auto& reply : replies) EXPECT_EQ(reply.get_future().get(), 0);
  EXPECT_EQ(stream->messages_read(), read + 1);
}

TEST_F(ExporterTest, ManyTransactionsInFlightAllMatchTheirReplies) {
  TestExporter exporter(dir_.path(), "e1", kSize);
  ExpectManyInFlightMatch(exporter);
}

// --io-threads=0: requests execute on the gRPC thread, without the pool.
TEST_F(ExporterTest, InlineIoWithoutAPoolServesTheSame) {
  ExporterOptions options;
  options.io_threads = 0;
  TestExporter exporter(dir_.path(), "e1", kSize, options);
  ExpectManyInFlightMatch(exporter);
}

// An exporter counter without labels.
double Counter(prometheus::Registry& registry, const std::string& name) {
  for (const prometheus::MetricFamily& family : registry.Collect()) {
    if (family.name == name) return family.metric.at(0).counter.value;
  }
  ADD_FAILURE() << "no " << name;
  return -1;
}

// The counter of requests run on the gRPC thread (--inline-io).
double InlineRequests(prometheus::Registry& registry) {
  return Counter(registry, "dst_exporter_inline_requests_total");
}

// --inline-io: on storage in memory, reads, writes and flushes of up to
// 1 MiB run on the gRPC thread; larger ones, checksums, and everything on
// a disk go to the pool. Replies are the same either way.
TEST_F(ExporterTest, InlineIoRunsSmallRequestsOnStorageInMemoryOnly) {
  ExporterOptions options;
  options.metrics = std::make_shared<prometheus::Registry>();
  TestExporter exporter(dir_.path(), "e1", kSize, options);
  exporter.storage().acts_in_memory = true;
  ExpectManyInFlightMatch(exporter);
  const double after_many = InlineRequests(*options.metrics);
  EXPECT_GE(after_many, 500) << "the 500 small reads and writes";

  auto stream = OpenStream(Channel(exporter.address()));
  const std::string big(2 << 20, 'b');
  ASSERT_EQ(stream->Call(WriteRequest(0, big)).status(), 0);
  v1::Reply read = stream->Call(ReadRequest(0, 2 << 20));
  ASSERT_EQ(read.status(), 0) << read.message();
  EXPECT_EQ(read.data(), big);
  v1::Request sum = Op(v1::OP_CHECKSUM);
  sum.set_length(4096);
  ASSERT_EQ(stream->Call(sum).status(), 0);
  EXPECT_EQ(InlineRequests(*options.metrics), after_many)
      << "2 MiB transfers and checksums go to the pool";

  ASSERT_EQ(stream->Call(WriteRequest(0, std::string(4096, 's'))).status(), 0);
  ASSERT_EQ(stream->Call(ReadRequest(0, 4096)).status(), 0);
  ASSERT_EQ(stream->Call(Op(v1::OP_FLUSH)).status(), 0);
  EXPECT_EQ(InlineRequests(*options.metrics), after_many + 3);

  exporter.storage().acts_in_memory = false;  // a disk: its calls may block
  ASSERT_EQ(stream->Call(ReadRequest(0, 4096)).status(), 0);
  EXPECT_EQ(InlineRequests(*options.metrics), after_many + 3);
}

TEST_F(ExporterTest, InlineIoOffSendsEverythingToThePool) {
  ExporterOptions options;
  options.metrics = std::make_shared<prometheus::Registry>();
  options.inline_io = false;
  TestExporter exporter(dir_.path(), "e1", kSize, options);
  exporter.storage().acts_in_memory = true;
  ExpectManyInFlightMatch(exporter);
  EXPECT_EQ(InlineRequests(*options.metrics), 0);
}

TEST_F(ExporterTest, RefusesBadRequestsWithPreciseStatus) {
  TestExporter exporter(dir_.path(), "e1", kSize);
  auto stream = OpenStream(Channel(exporter.address()));
  EXPECT_EQ(stream->Call(ReadRequest(kSize, 512)).status(),
            grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(stream->Call(ReadRequest(kSize - 512, 1024)).status(),
            grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(stream->Call(ReadRequest(100, 512)).status(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(stream->Call(ReadRequest(0, 8 << 20)).status(),
            grpc::StatusCode::INVALID_ARGUMENT)
      << "larger than max_transfer";
  v1::Request bad = WriteRequest(0, std::string(512, 'x'));
  bad.set_length(1024);
  EXPECT_EQ(stream->Call(bad).status(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(stream->Call(Op(v1::OP_UNSPECIFIED)).status(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ReadFile(exporter.path()), std::string(kSize, '\0'))
      << "nothing written";
  // The stream survives refusals.
  EXPECT_EQ(stream->Call(Op(v1::OP_PING)).status(), 0);
}

// Grow: the file grows with zeroes, the new range is served at once (open
// streams too) and negotiated; never shrinks; a misaligned size, a stale
// epoch and a read-only export are refused with nothing changed.
TEST_F(ExporterTest, GrowServesTheNewRangeAndRefusesWhatItMustNot) {
  TestExporter exporter(dir_.path(), "e1", kSize);
  auto channel = Channel(exporter.address());
  auto stub = Stub(channel);
  auto grow = [&stub](uint64_t size, uint64_t epoch, uint64_t* now) {
    grpc::ClientContext context;
    v1::GrowRequest request;
    request.set_size(size);
    request.set_epoch(epoch);
    v1::GrowReply reply;
    grpc::Status status = stub->Grow(&context, request, &reply);
    *now = reply.size();
    return status.error_code();
  };
  auto stream = OpenStream(channel);
  EXPECT_EQ(stream->Call(ReadRequest(kSize, 512)).status(),
            grpc::StatusCode::OUT_OF_RANGE);
  uint64_t now = 0;
  EXPECT_EQ(grow(2 * kSize + 100, 0, &now), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ReadFile(exporter.path()).size(), kSize);
  ASSERT_EQ(grow(2 * kSize, 0, &now), grpc::StatusCode::OK);
  EXPECT_EQ(now, 2 * kSize);
  EXPECT_EQ(ReadFile(exporter.path()).size(), 2 * kSize);
  EXPECT_EQ(stream->Call(WriteRequest(2 * kSize - 512, std::string(512, 'n')))
                .status(),
            0)
      << "an open stream writes past the old end";
  v1::Reply read = stream->Call(ReadRequest(kSize, 512));
  EXPECT_EQ(read.status(), 0);
  EXPECT_EQ(read.data(), std::string(512, '\0'));
  ASSERT_EQ(grow(kSize, 0, &now), grpc::StatusCode::OK) << "never shrinks";
  EXPECT_EQ(now, 2 * kSize);
  grpc::ClientContext context;
  v1::NegotiateReply negotiated;
  ASSERT_TRUE(
      stub->Negotiate(&context, v1::NegotiateRequest(), &negotiated).ok());
  EXPECT_EQ(negotiated.geometry().size(), 2 * kSize);
  // Claimed by epoch 3: a grow under epoch 2 is a stale gateway's.
  {
    grpc::ClientContext claim_context;
    v1::ClaimRequest claim;
    claim.set_epoch(3);
    claim.set_owner("gw");
    v1::ClaimReply claimed;
    ASSERT_TRUE(stub->Claim(&claim_context, claim, &claimed).ok());
  }
  EXPECT_EQ(grow(3 * kSize, 2, &now), grpc::StatusCode::ABORTED);
  EXPECT_EQ(ReadFile(exporter.path()).size(), 2 * kSize);
  exporter.storage().refuse_grow = true;
  EXPECT_EQ(grow(3 * kSize, 3, &now), grpc::StatusCode::FAILED_PRECONDITION);
  exporter.storage().refuse_grow = false;
  ASSERT_EQ(grow(3 * kSize, 3, &now), grpc::StatusCode::OK);
  EXPECT_EQ(now, 3 * kSize);
}

TEST_F(ExporterTest, AReadOnlyExportDoesNotGrow) {
  { TestExporter create(dir_.path(), "e1", kSize); }
  ExporterOptions options;
  options.read_only = true;
  TestExporter exporter(dir_.path(), "e1", kSize, options);
  grpc::ClientContext context;
  v1::GrowRequest request;
  request.set_size(2 * kSize);
  v1::GrowReply reply;
  EXPECT_EQ(
      Stub(exporter.address())->Grow(&context, request, &reply).error_code(),
      grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(ReadFile(exporter.path()).size(), kSize);
}

TEST_F(ExporterTest, ReadOnlyStreamCannotWriteEvenBypassingTheGateway) {
  TestExporter exporter(dir_.path(), "e1", kSize);
  auto stream = OpenStream(Channel(exporter.address()), "ro");
  v1::Request zero = Op(v1::OP_WRITE_ZEROES);
  zero.set_length(512);
  v1::Request trim = Op(v1::OP_TRIM);
  trim.set_length(512);
  for (const v1::Request& r :
       {WriteRequest(0, std::string(512, 'x')), zero, trim}) {
    EXPECT_EQ(stream->Call(r).status(), grpc::StatusCode::FAILED_PRECONDITION)
        << v1::Op_Name(r.op());
  }
  EXPECT_EQ(stream->Call(ReadRequest(0, 512)).status(), 0);
  EXPECT_EQ(ReadFile(exporter.path()), std::string(kSize, '\0'));
}

TEST_F(ExporterTest, ReadOnlyExportRefusesReadWriteStreams) {
  { TestExporter create(dir_.path(), "e1", kSize); }
  ExporterOptions options;
  options.read_only = true;
  TestExporter exporter(dir_.path(), "e1", kSize, options);
  auto stream = OpenStream(Channel(exporter.address()), "rw");
  v1::Reply reply = stream->Call(ReadRequest(0, 512));
  EXPECT_EQ(reply.status(), grpc::StatusCode::FAILED_PRECONDITION)
      << reply.message();
  auto ro = OpenStream(Channel(exporter.address()), "ro");
  EXPECT_EQ(ro->Call(ReadRequest(0, 512)).status(), 0);
  EXPECT_EQ(ro->Call(WriteRequest(0, std::string(512, 'x'))).status(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(ExporterTest, FlushAndFuaReachTheDisk) {
  TestExporter exporter(dir_.path(), "e1", kSize);
  auto stream = OpenStream(Channel(exporter.address()));
  int before = exporter.storage().flushes;
  EXPECT_EQ(stream->Call(Op(v1::OP_FLUSH)).status(), 0);
  EXPECT_EQ(exporter.storage().flushes, before + 1);
  v1::Request fua = WriteRequest(0, std::string(512, 'f'));
  fua.set_flags(v1::REQUEST_FLAG_FUA);
  EXPECT_EQ(stream->Call(fua).status(), 0);
  EXPECT_EQ(ReadFile(exporter.path()).substr(0, 512), std::string(512, 'f'));
}

TEST_F(ExporterTest, StorageErrorsAreReportedNotHidden) {
  TestExporter exporter(dir_.path(), "e1", kSize);
  auto stream = OpenStream(Channel(exporter.address()));
  exporter.storage().fail_writes = true;
  v1::Reply reply = stream->Call(WriteRequest(0, std::string(512, 'x')));
  EXPECT_EQ(reply.status(), grpc::StatusCode::INTERNAL);
  EXPECT_NE(reply.message().find("injected"), std::string::npos);
  EXPECT_EQ(stream->Call(Op(v1::OP_FLUSH)).status(), grpc::StatusCode::INTERNAL)
      << "a flush that did not reach the disk must not succeed";
  exporter.storage().fail_reads = true;
  EXPECT_EQ(stream->Call(ReadRequest(0, 512)).status(),
            grpc::StatusCode::INTERNAL);
}

TEST_F(ExporterTest, TransactionsFailWithUnavailableWhenTheExporterGoes) {
  auto exporter = std::make_unique<TestExporter>(dir_.path(), "e1", kSize);
  auto stream = OpenStream(Channel(exporter->address()));
  EXPECT_EQ(stream->Call(Op(v1::OP_PING)).status(), 0);
  exporter.reset();
  v1::Reply reply = stream->Call(ReadRequest(0, 512));
  EXPECT_EQ(reply.status(), grpc::StatusCode::UNAVAILABLE) << reply.message();
  EXPECT_TRUE(stream->broken());
}

TEST_F(ExporterTest, DrainAnswersEverythingInFlightBeforeEnding) {
  TestExporter exporter(dir_.path(), "e1", kSize);
  exporter.storage().Hold();
  auto stream = OpenStream(Channel(exporter.address()));
  constexpr int kCount = 20;
  std::vector<std::promise<v1::Reply>> replies(kCount);
  for (int i = 0; i < kCount; ++i) {
    stream->Submit(WriteRequest(uint64_t(i) * 512, std::string(512, 'd')),
                   [&replies, i](v1::Reply&& r, Payload&&) {
                     replies[i].set_value(std::move(r));
                   });
  }
  // Wait until the exporter has read them all, then drain (as SIGTERM does).
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (exporter.service().in_flight() < kCount && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_EQ(exporter.service().in_flight(), kCount)
      << "the exporter did not receive the requests";
  std::thread release([&exporter] {
    absl::SleepFor(absl::Milliseconds(50));  // the drain waits meanwhile
    exporter.storage().Release();
  });
  EXPECT_TRUE(exporter.service().Drain(absl::Now() + absl::Seconds(10)));
  release.join();
  for (int i = 0; i < kCount; ++i) {
    v1::Reply reply = replies[i].get_future().get();
    EXPECT_EQ(reply.status(), 0) << "request " << i << ": " << reply.message();
  }
  EXPECT_EQ(ReadFile(exporter.path()).substr(0, kCount * 512),
            std::string(kCount * 512, 'd'));
  // After the drain the stream is over: new work is refused, not lost.
  EXPECT_NE(stream->Call(ReadRequest(0, 512)).status(), 0);
}

// A fake exporter that answers every request twice: once with a forged id,
// then correctly.
class DoubleReplyExporter final : public v1::Exporter::Service {
 public:
  grpc::Status Stream(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<v1::ReplyBatch, v1::RequestBatch>* stream)
      override {
    v1::RequestBatch batch;
    while (stream->Read(&batch)) {
      for (const v1::Request& request : batch.requests()) {
        v1::ReplyBatch out;
        out.add_replies()->set_id(request.id() + 7777777);
        out.add_replies()->set_id(request.id());
        out.add_replies()->set_id(request.id());  // duplicate: late
        stream->Write(out);
      }
    }
    return grpc::Status::OK;
  }
};

TEST_F(ExporterTest, UnknownAndDuplicateRepliesAreCountedAndDropped) {
  DoubleReplyExporter fake;
  ServerSpec spec;
  spec.listen = {"unix:" + dir_.path() + "/fake.sock"};
  spec.services = {&fake};
  auto server = StartServer(spec);
  ASSERT_TRUE(server.ok()) << server.status();
  auto stream = OpenStream(Channel(spec.listen[0]));
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(stream->Call(Op(v1::OP_PING)).status(), 0);
  stream->Close();
  EXPECT_EQ(stream->late_replies(), 20u);
  server->Shutdown(absl::Now());
}

TEST_F(ExporterTest, ANewerClaimFencesOpenStreamsButNotReads) {
  ExporterOptions options;
  options.metrics = std::make_shared<prometheus::Registry>();
  TestExporter exporter(dir_.path(), "e1", kSize, options);
  auto channel = Channel(exporter.address());
  auto stub = Stub(channel);
  auto claim = [&stub](uint64_t epoch, const std::string& owner) {
    grpc::ClientContext context;
    v1::ClaimRequest request;
    request.set_epoch(epoch);
    request.set_owner(owner);
    v1::ClaimReply reply;
    return stub->Claim(&context, request, &reply);
  };
  ASSERT_TRUE(claim(1, "old").ok());
  auto old_stream = OpenStream(channel, "rw", "1");
  v1::Request write = Op(v1::OP_WRITE);
  write.set_length(512);
  write.set_data(std::string(512, 'o'));
  EXPECT_EQ(old_stream->Call(write).status(), 0);
  grpc::Status refused = claim(1, "other");
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::ABORTED);
  ASSERT_TRUE(claim(2, "new").ok());
  write.set_data(std::string(512, 'X'));
  v1::Reply reply = old_stream->Call(write);
  EXPECT_EQ(reply.status(), grpc::StatusCode::ABORTED);
  EXPECT_NE(reply.message().find("fenced"), std::string::npos);
  v1::Request read = Op(v1::OP_READ);
  read.set_length(512);
  EXPECT_EQ(old_stream->Call(read).data(), std::string(512, 'o'));
  EXPECT_EQ(OpenStream(channel)->Call(write).status(),
            grpc::StatusCode::ABORTED)
      << "a stream without an epoch is fenced once one was claimed";
  EXPECT_EQ(Counter(*options.metrics, "dst_exporter_fenced_requests_total"), 2)
      << "both refused writes are counted, the read is not";
  auto new_stream = OpenStream(channel, "rw", "2");
  EXPECT_EQ(new_stream->Call(write).status(), 0);
  grpc::ClientContext context;
  v1::NegotiateReply negotiated;
  ASSERT_TRUE(
      stub->Negotiate(&context, v1::NegotiateRequest(), &negotiated).ok());
  EXPECT_EQ(negotiated.metadata().epoch(), 2u);
  EXPECT_EQ(negotiated.metadata().owner(), "new");
}

// A write read before a takeover and still waiting for the disk when the
// new gateway claims must never land: fencing is decided when it runs, and
// the claim returns only once the writes already running have finished.
TEST_F(ExporterTest, AWriteQueuedBeforeAClaimIsRefusedWhenItRuns) {
  ExporterOptions options;
  options.io_threads = 1;
  TestExporter exporter(dir_.path(), "e1", kSize, options);
  auto channel = Channel(exporter.address());
  auto stub = Stub(channel);
  auto claim = [&stub](uint64_t epoch) {
    grpc::ClientContext context;
    v1::ClaimRequest request;
    request.set_epoch(epoch);
    request.set_owner("g");
    v1::ClaimReply reply;
    return stub->Claim(&context, request, &reply);
  };
  ASSERT_TRUE(claim(1).ok());
  auto old_stream = OpenStream(channel, "rw", "1");
  exporter.storage().Hold();
  auto write = [](uint64_t offset, char fill) {
    v1::Request w = Op(v1::OP_WRITE);
    w.set_offset(offset);
    w.set_length(512);
    w.set_data(std::string(512, fill));
    return w;
  };
  std::promise<v1::Reply> running, queued;
  old_stream->Submit(write(0, 'r'), [&](v1::Reply&& reply, Payload&&) {
    running.set_value(reply);
  });
  ASSERT_TRUE(exporter.storage().AwaitWaiting(1)) << "the first write runs";
  old_stream->Submit(write(512, 'O'), [&](v1::Reply&& reply, Payload&&) {
    queued.set_value(reply);
  });
  auto claimed = std::async(std::launch::async, [&] { return claim(2); });
  EXPECT_EQ(claimed.wait_for(std::chrono::milliseconds(300)),
            std::future_status::timeout)
      << "the claim returned while an older write was still running";
  exporter.storage().Release();
  EXPECT_TRUE(claimed.get().ok());
  EXPECT_EQ(running.get_future().get().status(), 0);
  v1::Reply refused = queued.get_future().get();
  EXPECT_EQ(refused.status(), grpc::StatusCode::ABORTED) << refused.message();
  v1::Request read = Op(v1::OP_READ);
  read.set_offset(512);
  read.set_length(512);
  EXPECT_EQ(OpenStream(channel, "rw", "2")->Call(read).data(),
            std::string(512, '\0'));
}

// A gateway that gave up on a stream (a timeout) resends on a new one; what
// the old stream still holds must not run after the new stream's writes.
TEST_F(ExporterTest, ANewerStreamOfTheEpochSupersedesTheOlder) {
  ExporterOptions options;
  options.io_threads = 1;
  TestExporter exporter(dir_.path(), "e1", kSize, options);
  auto channel = Channel(exporter.address());
  grpc::ClientContext context;
  v1::ClaimRequest request;
  request.set_epoch(1);
  request.set_owner("g");
  v1::ClaimReply claimed;
  ASSERT_TRUE(Stub(channel)->Claim(&context, request, &claimed).ok());
  auto old_stream = OpenStream(channel, "rw", "1");
  exporter.storage().Hold();
  std::promise<v1::Reply> running, queued;
  v1::Request first = Op(v1::OP_WRITE);
  first.set_length(512);
  first.set_data(std::string(512, 'r'));
  old_stream->Submit(
      first, [&](v1::Reply&& reply, Payload&&) { running.set_value(reply); });
  ASSERT_TRUE(exporter.storage().AwaitWaiting(1));
  v1::Request late = Op(v1::OP_WRITE);
  late.set_offset(512);
  late.set_length(512);
  late.set_data(std::string(512, 'O'));
  old_stream->Submit(
      late, [&](v1::Reply&& reply, Payload&&) { queued.set_value(reply); });
  // The new stream opens (as after a timeout) while both wait.
  auto new_stream = OpenStream(channel, "rw", "1");
  v1::Request ping = Op(v1::OP_PING);
  ASSERT_EQ(new_stream->Call(ping).status(), 0);
  exporter.storage().Release();
  EXPECT_EQ(running.get_future().get().status(), 0);
  EXPECT_EQ(queued.get_future().get().status(), grpc::StatusCode::UNAVAILABLE);
  v1::Request read = Op(v1::OP_READ);
  read.set_offset(512);
  read.set_length(512);
  EXPECT_EQ(new_stream->Call(read).data(), std::string(512, '\0'));
}

TEST_F(ExporterTest, ChecksumIsTheSha256OfTheRange) {
  TestExporter exporter(dir_.path(), "e1", kSize);
  auto stream = OpenStream(Channel(exporter.address()));
  v1::Request sum = Op(v1::OP_CHECKSUM);
  sum.set_offset(4096);
  sum.set_length(4096);
  v1::Reply zeroes = stream->Call(sum);
  ASSERT_EQ(zeroes.status(), 0) << zeroes.message();
  // SHA-256 of 4096 zero bytes.
  EXPECT_EQ(absl::BytesToHexString(zeroes.data()),
            "ad7facb2586fc6e966c004d7d1d16b024f5805ff7cb47c7a85dabd8b48892ca7");
  v1::Request write = Op(v1::OP_WRITE);
  write.set_offset(4096);
  write.set_length(512);
  write.set_data(std::string(512, 'c'));
  ASSERT_EQ(stream->Call(write).status(), 0);
  EXPECT_NE(stream->Call(sum).data(), zeroes.data());
  sum.set_length(8u << 20);  // more than max_transfer
  EXPECT_EQ(stream->Call(sum).status(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ExporterTest, WriteWithADamagedChecksumIsRefusedAndReadsCarryOne) {
  TestExporter exporter(dir_.path(), "e1", kSize);
  auto stream = OpenStream(Channel(exporter.address()));
  v1::Request write = Op(v1::OP_WRITE);
  write.set_length(512);
  write.set_data(std::string(512, 'd'));
  write.set_checksum_algorithm(v1::CHECKSUM_CRC32C);
  write.set_checksum(ComputeChecksum(v1::CHECKSUM_CRC32C, write.data()));
  write.mutable_data()->at(100) = 'X';  // damaged on its way
  v1::Reply reply = stream->Call(write);
  EXPECT_EQ(reply.status(), grpc::StatusCode::DATA_LOSS);
  EXPECT_EQ(ReadFile(exporter.path()).substr(0, 512), std::string(512, '\0'))
      << "nothing written";
  write.set_data(std::string(512, 'd'));
  write.set_checksum_algorithm(v1::CHECKSUM_SHA256);
  write.set_checksum(ComputeChecksum(v1::CHECKSUM_SHA256, write.data()));
  ASSERT_EQ(stream->Call(write).status(), 0);
  v1::Request read = Op(v1::OP_READ);
  read.set_length(512);
  read.set_checksum_algorithm(v1::CHECKSUM_CRC32C);
  reply = stream->Call(read);
  ASSERT_EQ(reply.status(), 0);
  EXPECT_EQ(reply.checksum(),
            ComputeChecksum(v1::CHECKSUM_CRC32C, std::string(512, 'd')));
}

TEST_F(ExporterTest, OneClientCannotOpenMoreThanItsStreams) {
  ExporterOptions options;
  options.max_streams_per_client = 2;
  TestExporter exporter(dir_.path(), "e1", kSize, options);
  auto channel = Channel(exporter.address());
  auto first = OpenStream(channel);
  auto second = OpenStream(channel);
  ASSERT_EQ(first->Call(Op(v1::OP_PING)).status(), 0);
  ASSERT_EQ(second->Call(Op(v1::OP_PING)).status(), 0);
  auto third = OpenStream(channel);
  v1::Reply refused = third->Call(Op(v1::OP_PING));
  EXPECT_EQ(refused.status(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << refused.message();
  first->Close();
  first.reset();
  for (int i = 0; i < 100; ++i) {  // the server sees the close a bit later
    auto again = OpenStream(channel);
    v1::Reply reply = again->Call(Op(v1::OP_PING));
    if (reply.status() == 0) break;
    absl::SleepFor(absl::Milliseconds(20));
    ASSERT_LT(i, 99) << "a closed stream's slot was never given back";
  }
}

TEST_F(ExporterTest, AStreamStopsReadingPastItsInFlightBytes) {
  ExporterOptions options;
  options.stream.max_in_flight_bytes = 1 << 20;
  TestExporter exporter(dir_.path(), "e1", kSize, options);
  exporter.storage().Hold();
  auto stream = OpenStream(Channel(exporter.address()));
  constexpr int kCount = 8;  // 8 MiB: two and more messages
  std::vector<std::promise<v1::Reply>> replies(kCount);
  for (int i = 0; i < kCount; ++i) {
    stream->Submit(WriteRequest(uint64_t(i) << 20, std::string(1 << 20, 'b')),
                   [&replies, i](v1::Reply&& r, Payload&&) {
                     replies[i].set_value(std::move(r));
                   });
  }
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_LT(exporter.service().in_flight(), kCount)
      << "the exporter read past its in-flight bytes";
  exporter.storage().Release();
  for (int i = 0; i < kCount; ++i) {
    EXPECT_EQ(replies[i].get_future().get().status(), 0) << i;
  }
}

}  // namespace
}  // namespace dst
