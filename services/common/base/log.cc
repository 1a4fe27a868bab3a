// Levelled logging: see log.h.
#include "services/common/base/log.h"

#include <unistd.h>

#include <atomic>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace dst {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};

std::function<void(LogLevel, absl::string_view)>& Sink() {
  static auto* sink = new std::function<void(LogLevel, absl::string_view)>;
  return *sink;
}

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "DEBUG";
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kWarning:
      return "WARNING";
    case LogLevel::kError:
      return "ERROR";
  }
  return "?";
}

}  // namespace

void SetLogLevel(LogLevel level) { g_level = static_cast<int>(level); }

bool ParseLogLevel(absl::string_view text, LogLevel* level) {
  for (LogLevel candidate : {LogLevel::kDebug, LogLevel::kInfo,
                             LogLevel::kWarning, LogLevel::kError}) {
    std::string name = LevelName(candidate);
    for (char& c : name) c = static_cast<char>(c - 'A' + 'a');
    if (text == name) {
      *level = candidate;
      return true;
    }
  }
  return false;
}

bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= g_level; }

void SetLogSink(std::function<void(LogLevel, absl::string_view)> sink) {
  Sink() = std::move(sink);
}

void LogLine(LogLevel level, absl::string_view line) {
  if (Sink()) {
    Sink()(level, line);
    return;
  }
  std::string out =
      absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                                    absl::UTCTimeZone()),
                   " ", LevelName(level), " ", line, "\n");
  // One write(2) per line keeps lines whole when threads log at once.
  ssize_t ignored = ::write(STDERR_FILENO, out.data(), out.size());
  (void)ignored;
}

}  // namespace dst
