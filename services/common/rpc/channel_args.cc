// Channel arguments of dst's clients: see channel_args.h.
#include "services/common/rpc/channel_args.h"

#include <algorithm>

#include "services/common/rpc/unix_send_buffer.h"

namespace dst {

grpc::ChannelArguments ClientChannelArguments(int max_message_bytes,
                                              int keepalive_ms,
                                              int keepalive_timeout_ms) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(max_message_bytes);
  args.SetMaxSendMessageSize(max_message_bytes);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS,
              std::max(keepalive_ms, static_cast<int>(kMinKeepaliveMs)));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, keepalive_timeout_ms);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // Reconnect quickly after an exporter or gateway restart.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  WidenUnixSendBuffers(&args);
  return args;
}

}  // namespace dst
