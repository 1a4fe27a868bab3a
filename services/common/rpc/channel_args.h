// The channel arguments of every dst client (the gateway's channels to its
// exporters, the plugin's and dstctl's to a gateway): message limits,
// keepalive, reconnect backoff, Unix send buffers.
#ifndef DST_SERVICES_COMMON_RPC_CHANNEL_ARGS_H_
#define DST_SERVICES_COMMON_RPC_CHANNEL_ARGS_H_

#include <grpcpp/grpcpp.h>

namespace dst {

// Servers accept keepalive pings this often; clients ping no more often.
inline constexpr int kMinKeepaliveMs = 1000;

// Channel arguments every dst client uses (message size, keepalive).
grpc::ChannelArguments ClientChannelArguments(int max_message_bytes,
                                              int keepalive_ms = 10000,
                                              int keepalive_timeout_ms = 5000);

}  // namespace dst

#endif  // DST_SERVICES_COMMON_RPC_CHANNEL_ARGS_H_
