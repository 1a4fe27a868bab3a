// Wider send buffers on Unix connections: the helper on sockets of each
// family, and both ends of a real gRPC connection over a Unix socket (an
// exporter's accepted connection through its UnixListener, the client's
// through ClientChannelArguments' socket mutator).
#include "services/common/rpc/unix_send_buffer.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "services/common/rpc/channel_args.h"
#include "services/common/rpc/unix_listener.h"
#include "services/common/security/unix_peers.h"
#include "tests/integration/test_cluster.h"

namespace dst {
namespace {

int SendBuffer(int fd) {
  int bytes = 0;
  socklen_t size = sizeof(bytes);
  EXPECT_EQ(::getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, &size), 0);
  return bytes;
}

// What the kernel keeps for kUnixSendBufferBytes: twice the request,
// capped at net.core.wmem_max.
int Widened() {
  std::ifstream file("/proc/sys/net/core/wmem_max");
  int wmem_max = 0;
  file >> wmem_max;
  EXPECT_GT(wmem_max, 0) << "cannot read /proc/sys/net/core/wmem_max";
  return 2 * std::min(kUnixSendBufferBytes, wmem_max);
}

TEST(UnixSendBufferTest, WidensUnixSocketsOnly) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
  const int before = SendBuffer(pair[0]);
  ASSERT_NE(before, Widened()) << "the default already has the wide size";
  EXPECT_TRUE(WidenUnixSendBuffer(pair[0]));
  EXPECT_EQ(SendBuffer(pair[0]), Widened());
  EXPECT_EQ(SendBuffer(pair[1]), before) << "only the socket asked for";
  ::close(pair[0]);
  ::close(pair[1]);

  const int tcp = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(tcp, 0);
  const int tcp_before = SendBuffer(tcp);
  EXPECT_TRUE(WidenUnixSendBuffer(tcp));
  EXPECT_EQ(SendBuffer(tcp), tcp_before) << "TCP keeps its autotuning";
  ::close(tcp);

  EXPECT_FALSE(WidenUnixSendBuffer(-1));
}

// The descriptor of this process's connection to the Unix socket `path`
// (the client end), or -1.
int ClientEndOf(const std::string& path) {
  for (int fd = 0; fd < 4096; ++fd) {
    sockaddr_un peer{};
    socklen_t length = sizeof(peer);
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length) != 0 ||
        peer.sun_family != AF_UNIX) {
      continue;
    }
    if (std::string(peer.sun_path) == path) return fd;
  }
  return -1;
}

// An exporter as the services run one (its Unix listener) and a channel
// as the gateway and the plugin build theirs (ClientChannelArguments).
TEST(UnixSendBufferTest, BothEndsOfAGrpcUnixConnectionAreWidened) {
  TempDir dir;
  TestExporter exporter(dir.path(), "e1", 1 << 20);
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
      exporter.address(), grpc::InsecureChannelCredentials(),
      ClientChannelArguments(4 << 20));
  ASSERT_TRUE(channel->WaitForConnected(std::chrono::system_clock::now() +
                                        std::chrono::seconds(10)));
  const std::string path = exporter.address().substr(std::strlen("unix:"));
  const int client = ClientEndOf(path);
  ASSERT_GE(client, 0) << "no connection to " << path << " in this process";
  EXPECT_EQ(SendBuffer(client), Widened()) << "the client's end";
  // The server's end: the one connection the exporter's listener accepted.
  int accepted = -1;
  for (int fd = 0; fd < 4096 && accepted < 0; ++fd) {
    if (UnixPeerOf(fd).has_value()) accepted = fd;
  }
  ASSERT_GE(accepted, 0) << "the listener recorded no connection";
  EXPECT_EQ(SendBuffer(accepted), Widened()) << "the server's end";
}

}  // namespace
}  // namespace dst
