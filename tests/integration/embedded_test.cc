// The embedded mode (nbdkit-plugin/embedded_volume.h): the gateway engine
// run by the plugin itself, from a gateway configuration file, over
// in-process exporters: reads back what was written on a mirror, keeps
// writing with one replica gone, one writer at a time, read-only opens,
// and precise errors for a bad configuration or volume name.
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "nbdkit-plugin/embedded_volume.h"
#include "tests/integration/test_cluster.h"

namespace dst {
namespace {

constexpr uint64_t kSize = 4 << 20;

v1::Request Flush() {
  v1::Request request;
  request.set_op(v1::OP_FLUSH);
  return request;
}

class EmbeddedTest : public ::testing::Test {
 protected:
  // Writes a gateway configuration with volume vol0 over `replicas`.
  std::string WriteConfig(const std::vector<std::string>& replicas) {
    std::string text = "state_dir: \"" + dir_.path() + "/state\"\nvolumes:\n";
    text += "  - name: vol0\n    lag_limit_ms: 200\n    replicas:\n";
    for (const std::string& address : replicas) {
      text += "      - address: \"" + address + "\"\n";
    }
    std::string path = dir_.path() + "/gateway.yaml";
    std::ofstream(path) << text;
    return path;
  }
  ClientOpenOptions Writer(const std::string& token) {
    ClientOpenOptions options;
    options.lease_token = token;
    options.timeout = absl::Seconds(10);
    return options;
  }
  TempDir dir_;
};

TEST_F(EmbeddedTest, MirrorReadsBackWhatWasWrittenAndSurvivesAReplicaLoss) {
  TestExporter e1(dir_.path(), "e1", kSize);
  TestExporter e2(dir_.path(), "e2", kSize);
  auto embedded = EmbeddedVolume::Start(
      WriteConfig({e1.address(), e2.address()}), "vol0", "embedded-test");
  ASSERT_TRUE(embedded.ok()) << embedded.status();
  auto client = EmbeddedClient::Open(&(*embedded)->volume(), Writer("t1"));
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_EQ((*client)->geometry().size(), kSize);
  ASSERT_EQ(
      (*client)->Call(WriteRequest(8192, std::string(4096, 'a'))).status(), 0);
  ASSERT_EQ((*client)->Call(Flush()).status(), 0);
  v1::Reply read = (*client)->Call(ReadRequest(8192, 4096));
  ASSERT_EQ(read.status(), 0) << read.message();
  EXPECT_EQ(read.data(), std::string(4096, 'a'));

  // One replica gone: writes go on (the lag limit drops it from the set).
  e2.Stop();
  ASSERT_EQ((*client)->Call(WriteRequest(0, std::string(4096, 'b'))).status(),
            0);
  read = (*client)->Call(ReadRequest(0, 4096));
  ASSERT_EQ(read.status(), 0) << read.message();
  EXPECT_EQ(read.data(), std::string(4096, 'b'));
  EXPECT_EQ((*embedded)->volume().health(), VolumeHealth::kDegraded);
}

// What the plugin sees of the embedded mode: a VolumeBackend whose clients
// never borrow a write's buffer.
TEST_F(EmbeddedTest, AsABackendItOpensClientsAndNeverLendsWriteBuffers) {
  TestExporter e1(dir_.path(), "e1", kSize);
  const std::string config = WriteConfig({e1.address()});
  absl::StatusOr<std::unique_ptr<VolumeBackend>> backend =
      EmbeddedVolume::Start(config, "vol0", "embedded-test");
  ASSERT_TRUE(backend.ok()) << backend.status();
  EXPECT_FALSE((*backend)->LendsWriteBuffers());
  EXPECT_EQ((*backend)->Where(), "embedded from config=" + config);
  auto client = (*backend)->Open(Writer("t1"));
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_EQ(
      (*client)
          ->Call(WriteRequest(0, std::string(4096, 'e')), Payload(), nullptr)
          .status(),
      0);
  Payload data;
  ASSERT_EQ((*client)->Call(ReadRequest(0, 4096), Payload(), &data).status(),
            0);
  EXPECT_EQ(data.ToString(), std::string(4096, 'e'));
  client->reset();
  (*backend)->Shutdown();
}

TEST_F(EmbeddedTest, OneWriterAtATimeAndReadersAlways) {
  TestExporter e1(dir_.path(), "e1", kSize);
  auto embedded =
      EmbeddedVolume::Start(WriteConfig({e1.address()}), "vol0", "embedded");
  ASSERT_TRUE(embedded.ok()) << embedded.status();
  Volume* volume = &(*embedded)->volume();
  auto writer = EmbeddedClient::Open(volume, Writer("t1"));
  ASSERT_TRUE(writer.ok()) << writer.status();
  auto same_lease = EmbeddedClient::Open(volume, Writer("t1"));
  EXPECT_TRUE(same_lease.ok()) << "a writer's second connection";
  auto other = EmbeddedClient::Open(volume, Writer("t2"));
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), absl::StatusCode::kFailedPrecondition);
  ClientOpenOptions reader = Writer("");
  reader.read_only = true;
  auto read_only = EmbeddedClient::Open(volume, reader);
  ASSERT_TRUE(read_only.ok()) << read_only.status();
  EXPECT_TRUE((*read_only)->geometry().read_only());
  EXPECT_NE((*read_only)->Call(WriteRequest(0, std::string(512, 'x'))).status(),
            0)
      << "a read-only client wrote";
}

TEST_F(EmbeddedTest, BadConfigurationOrVolumeIsAPreciseError) {
  TestExporter e1(dir_.path(), "e1", kSize);
  const std::string config = WriteConfig({e1.address()});
  auto missing = EmbeddedVolume::Start(config, "nope", "embedded");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("no volume 'nope'"),
            std::string::npos)
      << missing.status();
  std::ofstream(dir_.path() + "/bad.yaml") << "volumes:\n  - nmae: x\n";
  auto bad = EmbeddedVolume::Start(dir_.path() + "/bad.yaml", "x", "embedded");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("volumes[0].nmae: unknown key"),
            std::string::npos)
      << bad.status();
}

// Open waits for the replicas, then gives up with UNAVAILABLE.
TEST_F(EmbeddedTest, OpenWithoutReplicasTimesOut) {
  auto embedded = EmbeddedVolume::Start(
      WriteConfig({"unix:" + dir_.path() + "/nobody.sock"}), "vol0", "e");
  ASSERT_TRUE(embedded.ok()) << embedded.status();
  ClientOpenOptions options = Writer("t1");
  options.timeout = absl::Milliseconds(300);
  auto client = EmbeddedClient::Open(&(*embedded)->volume(), options);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace dst
