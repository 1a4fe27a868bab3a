// Process-wide settings of the data path, for the services and the plugin
// (one call, first thing in the process or after nbdkit's fork).
#ifndef DST_SERVICES_COMMON_BASE_PROCESS_TUNING_H_
#define DST_SERVICES_COMMON_BASE_PROCESS_TUNING_H_

namespace dst {

// - glibc malloc keeps freed large buffers on the heap instead of a fresh
//   mmap per message (docs/architecture.md, "Toolchain": 2.6x throughput
//   at 1 MiB; 10-22% of the plugin's sequential throughput).
// - Abseil's mutex deadlock detection is off: Debian builds Abseil with it
//   on, and it records every lock order in a graph on every acquisition.
//   The tests keep it (they do not call this).
void TuneProcessForDataPath();

}  // namespace dst

#endif  // DST_SERVICES_COMMON_BASE_PROCESS_TUNING_H_
