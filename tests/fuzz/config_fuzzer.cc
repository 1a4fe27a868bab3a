// libFuzzer target: the gateway's config parser must refuse any input with
// a status, never crash, hang or leak.
#include <cstddef>
#include <cstdint>
#include <string>

#include "services/gateway/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<dst::v1::GatewayConfig> config = dst::ParseGatewayConfig(text);
  if (config.ok()) {
    // What was accepted is complete: defaults filled, names present.
    if (config->volumes_size() == 0) __builtin_trap();
    for (const auto& volume : config->volumes()) {
      if (volume.name().empty() || volume.replicas_size() == 0 ||
          volume.max_in_flight() == 0 || volume.request_timeout_ms() == 0) {
        __builtin_trap();
      }
    }
  }
  return 0;
}
