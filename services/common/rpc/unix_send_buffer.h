// Wider send buffers on Unix-socket connections, both ends.
//
// A Unix stream socket keeps the send buffer it was created with
// (net.core.wmem_default, usually 208 KiB); it does not grow the way TCP
// autotunes. A 1 MiB message then leaves in five or more sendmsg calls,
// each waiting for the reader to drain the last: more wake-ups and system
// calls per byte on every hop. dst widens the buffer of every Unix
// connection it accepts (UnixListener) or opens (through the gRPC channel
// arguments of ClientChannelArguments). TCP connections are left to the
// kernel's autotuning, which a fixed SO_SNDBUF would switch off.
#ifndef DST_SERVICES_COMMON_RPC_UNIX_SEND_BUFFER_H_
#define DST_SERVICES_COMMON_RPC_UNIX_SEND_BUFFER_H_

#include <grpcpp/support/channel_arguments.h>

namespace dst {

// SO_SNDBUF asked for; the kernel caps it at net.core.wmem_max and keeps
// twice the value. 2 MiB: 1 MiB reads through one replica +16-18%
// (bench/results/2026-11-25-unix-send-buffer.md).
inline constexpr int kUnixSendBufferBytes = 2 << 20;

// Sets `fd`'s send buffer to kUnixSendBufferBytes when it is a Unix
// socket; leaves any other socket alone. False (errno set) on failure.
bool WidenUnixSendBuffer(int fd);

// Makes the channels built with `args` widen their Unix connections'
// send buffers as they connect (a gRPC socket mutator).
void WidenUnixSendBuffers(grpc::ChannelArguments* args);

}  // namespace dst

#endif  // DST_SERVICES_COMMON_RPC_UNIX_SEND_BUFFER_H_
