// Strict command-line parsing for dst binaries: "--name=value" or "--name"
// (booleans), each name declared with its help line; an unknown flag, a
// missing value or a repeated non-repeatable flag is an error naming it.
#ifndef DST_SERVICES_COMMON_BASE_FLAGS_H_
#define DST_SERVICES_COMMON_BASE_FLAGS_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace dst {

struct FlagSpec {
  std::string name;        // without the dashes
  std::string value_name;  // e.g. "ADDR"; empty for a boolean flag
  std::string help;        // one line, with the default
  bool repeatable = false;
};

class Flags {
 public:
  Flags(std::string program, std::string summary, std::vector<FlagSpec> specs);

  // Parses argv[1..]; positional arguments are collected in order.
  absl::Status Parse(int argc, char** argv);

  // Parse() for a main(): prints the usage for --help (returns 0) or the
  // error and the usage to stderr (returns 2); nullopt means go on. With
  // `positional` false, any positional argument is an error. A declared
  // "log-level" flag is applied (SetLogLevel).
  std::optional<int> ParseCommandLine(int argc, char** argv, bool positional);
  std::string Usage() const;

  bool Has(const std::string& name) const;
  // The last value given, or `fallback`.
  std::string Get(const std::string& name,
                  const std::string& fallback = "") const;
  std::vector<std::string> GetAll(const std::string& name) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::string program_;
  std::string summary_;
  std::vector<FlagSpec> specs_;
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
};

// Parses a byte count: digits with an optional K, M, G or T suffix (powers
// of 1024). InvalidArgument names `flag`.
absl::Status ParseBytes(const std::string& flag, const std::string& text,
                        uint64_t* bytes);

}  // namespace dst

#endif  // DST_SERVICES_COMMON_BASE_FLAGS_H_
