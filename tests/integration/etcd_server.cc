// A real etcd for tests: see etcd_server.h.
#include "tests/integration/etcd_server.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <utility>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace dst {

namespace {

constexpr char kEtcd[] = "/usr/bin/etcd";

sockaddr_in Loopback(int port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  return address;
}

// `n` loopback ports free now (the kernel's picks for port 0, all bound
// while picking, so that they differ).
std::vector<int> FreePorts(int n) {
  std::vector<int> ports(static_cast<size_t>(n), 0);
  std::vector<int> fds;
  for (int& port : ports) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    fds.push_back(fd);
    sockaddr_in address = Loopback(0);
    socklen_t length = sizeof(address);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), length) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) ==
            0) {
      port = ntohs(address.sin_port);
    }
  }
  for (int fd : fds) ::close(fd);
  return ports;
}

// True once etcd's /health answers healthy on the loopback `port`. (A gRPC
// connection made while etcd starts, between its bind and its readiness,
// stalls for 10 s: the probe is plain HTTP.)
bool Healthy(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address = Loopback(port);
  timeval timeout{0, 500000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  std::string response;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) ==
      0) {
    const std::string request = "GET /health HTTP/1.0\r\n\r\n";
    if (::write(fd, request.data(), request.size()) ==
        static_cast<ssize_t>(request.size())) {
      char buffer[1024];
      ssize_t n;
      while ((n = ::read(fd, buffer, sizeof(buffer))) > 0) {
        response.append(buffer, static_cast<size_t>(n));
      }
    }
  }
  ::close(fd);
  return response.find("\"health\":\"true\"") != std::string::npos;
}

}  // namespace

EtcdServer::EtcdServer() {
  std::string pattern =
      (std::filesystem::temp_directory_path() / "dst-etcd-XXXXXX").string();
  if (::mkdtemp(pattern.data()) != nullptr) dir_ = pattern;
}

EtcdServer::~EtcdServer() {
  Stop();
  std::error_code ignored;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
}

absl::Status EtcdServer::Start(int members) {
  if (::access(kEtcd, X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(kEtcd, " is missing: install etcd-server"));
  }
  if (dir_.empty()) return absl::InternalError("no temporary directory");
  const std::vector<int> ports = FreePorts(2 * members);
  std::string cluster;  // name=peer URL, ...
  for (int m = 0; m < members; ++m) {
    endpoints_.push_back(absl::StrCat("127.0.0.1:", ports[2 * m]));
    absl::StrAppend(&cluster, m == 0 ? "" : ",", "m", m,
                    "=http://127.0.0.1:", ports[2 * m + 1]);
  }
  for (int m = 0; m < members; ++m) {
    const std::string client_url = absl::StrCat("http://", endpoints_[m]);
    const std::string peer_url =
        absl::StrCat("http://127.0.0.1:", ports[2 * m + 1]);
    std::vector<std::string> args = {
        kEtcd,
        absl::StrCat("--name=m", m),
        absl::StrCat("--data-dir=", dir_, "/data", m),
        absl::StrCat("--listen-client-urls=", client_url),
        absl::StrCat("--advertise-client-urls=", client_url),
        absl::StrCat("--listen-peer-urls=", peer_url),
        absl::StrCat("--initial-advertise-peer-urls=", peer_url),
        absl::StrCat("--initial-cluster=", cluster),
        "--initial-cluster-state=new",
        // Leases as short as 1 s: etcd's minimum TTL is 1.5 election
        // timeouts.
        "--heartbeat-interval=10",
        "--election-timeout=100",
        "--log-level=error",
    };
    const std::string log = absl::StrCat(dir_, "/etcd", m, ".log");
    // Everything the child needs is made before the fork: a child of a
    // threaded process may not allocate.
    std::vector<char*> argv;
    argv.reserve(args.size() + 1);
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) return absl::InternalError("fork failed");
    if (pid == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd < 0 || ::dup2(fd, STDERR_FILENO) < 0) _exit(126);
      ::execv(kEtcd, argv.data());
      _exit(127);
    }
    pids_.push_back(pid);
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  for (int m = 0; m < members; ++m) {
    while (!Healthy(ports[2 * m])) {
      int status = 0;
      if (::waitpid(pids_[m], &status, WNOHANG) == pids_[m]) {
        pids_[m] = -1;
        return absl::InternalError(
            absl::StrCat("etcd member ", m, " exited (status ", status,
                         "); see ", dir_, "/etcd", m, ".log"));
      }
      if (absl::Now() >= deadline) {
        return absl::DeadlineExceededError(absl::StrCat(
            "etcd member ", m, " was not healthy within 20 s; see ", dir_,
            "/etcd", m, ".log"));
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
  }
  return absl::OkStatus();
}

void EtcdServer::StopMember(int member) {
  pid_t& pid = pids_.at(static_cast<size_t>(member));
  if (pid <= 0) return;
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  pid = -1;
}

void EtcdServer::Stop() {
  for (size_t m = 0; m < pids_.size(); ++m) StopMember(static_cast<int>(m));
}

}  // namespace dst
