// Wider send buffers on Unix-socket connections: see unix_send_buffer.h.
#include "services/common/rpc/unix_send_buffer.h"

#include <cerrno>
#include <cstring>

#include <grpc/support/sync.h>
#include <sys/socket.h>

#include "services/common/base/log.h"

// gRPC 1.51's socket mutator, laid out as src/core/lib/iomgr/
// socket_mutator.h declares it. The public headers name the type (and
// ChannelArguments::SetSocketMutator takes one) but do not define it.
// dst builds against Debian 12's gRPC 1.51 (docs/architecture.md,
// "Toolchain"); another gRPC must be checked against this layout
// (UnixSendBufferTest fails when the mutator is not applied).
namespace dst::grpc_layout {
enum FdUsage : int { kClientConnection, kServerListener, kServerConnection };
struct MutateSocketInfo {
  int fd;
  FdUsage usage;
};
struct MutatorVtable {
  bool (*mutate_fd)(int fd, grpc_socket_mutator* mutator);
  int (*compare)(grpc_socket_mutator* a, grpc_socket_mutator* b);
  void (*destroy)(grpc_socket_mutator* mutator);
  bool (*mutate_fd_2)(const MutateSocketInfo* info,
                      grpc_socket_mutator* mutator);
};
}  // namespace dst::grpc_layout

struct grpc_socket_mutator {
  const dst::grpc_layout::MutatorVtable* vtable;
  gpr_refcount refcount;
};

namespace dst {

bool WidenUnixSendBuffer(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    return false;
  }
  if (address.ss_family != AF_UNIX) return true;
  return ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &kUnixSendBufferBytes,
                      sizeof(kUnixSendBufferBytes)) == 0;
}

namespace {

bool MutateFd(int fd, grpc_socket_mutator* /*mutator*/) {
  if (!WidenUnixSendBuffer(fd)) {
    // A connection with the default buffer still works: do not fail it.
    DST_LOG(Debug, "widening the send buffer of fd %d: %s", fd,
            std::strerror(errno));
  }
  return true;
}

bool MutateFd2(const grpc_layout::MutateSocketInfo* info,
               grpc_socket_mutator* mutator) {
  return MutateFd(info->fd, mutator);
}

// One mutator for the process: every channel compares equal on it (so
// channels to one address can share subchannels), and it is never freed.
int Compare(grpc_socket_mutator* /*a*/, grpc_socket_mutator* /*b*/) {
  return 0;
}
void Destroy(grpc_socket_mutator* /*mutator*/) {}

grpc_socket_mutator* TheMutator() {
  static const grpc_layout::MutatorVtable vtable = {MutateFd, Compare, Destroy,
                                                    MutateFd2};
  static grpc_socket_mutator* mutator = [] {
    auto* m = new grpc_socket_mutator;
    m->vtable = &vtable;
    gpr_ref_init(&m->refcount, 1);  // this reference is never released
    return m;
  }();
  return mutator;
}

}  // namespace

void WidenUnixSendBuffers(grpc::ChannelArguments* args) {
  grpc_socket_mutator* mutator = TheMutator();
  gpr_ref(&mutator->refcount);  // SetSocketMutator takes a reference
  args->SetSocketMutator(mutator);
}

}  // namespace dst
