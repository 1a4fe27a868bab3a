// Levelled logging to stderr, one line per event:
//   2026-11-24T20:00:00.123Z INFO exporter: listening on 127.0.0.1:7001
// Thread-safe. The level is process-wide; set it once at start.
#ifndef DST_SERVICES_COMMON_BASE_LOG_H_
#define DST_SERVICES_COMMON_BASE_LOG_H_

#include <functional>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace dst {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

void SetLogLevel(LogLevel level);
// Parses "debug", "info", "warning" or "error".
bool ParseLogLevel(absl::string_view text, LogLevel* level);
bool LogEnabled(LogLevel level);
void LogLine(LogLevel level, absl::string_view line);
// Sends every line to `sink` instead of stderr (null: stderr again). For a
// single-threaded test that keeps the engine's lines in its own trace (the
// crash simulation); set before any thread logs.
void SetLogSink(std::function<void(LogLevel, absl::string_view)> sink);

template <typename... Args>
void Log(LogLevel level, const absl::FormatSpec<Args...>& format,
         const Args&... args) {
  if (LogEnabled(level)) LogLine(level, absl::StrFormat(format, args...));
}

}  // namespace dst

#define DST_LOG(level, ...) ::dst::Log(::dst::LogLevel::k##level, __VA_ARGS__)

#endif  // DST_SERVICES_COMMON_BASE_LOG_H_
