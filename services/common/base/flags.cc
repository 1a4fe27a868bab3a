// Strict flag parsing: see flags.h.
#include "services/common/base/flags.h"

#include <cstdio>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

#include "services/common/base/log.h"

namespace dst {

Flags::Flags(std::string program, std::string summary,
             std::vector<FlagSpec> specs)
    : program_(std::move(program)),
      summary_(std::move(summary)),
      specs_(std::move(specs)) {}

absl::Status Flags::Parse(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (!absl::StartsWith(arg, "--")) {
      positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::string value;
    bool has_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    const FlagSpec* spec = nullptr;
    for (const FlagSpec& candidate : specs_) {
      if (candidate.name == name) spec = &candidate;
    }
    if (spec == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
    if (spec->value_name.empty()) {
      if (has_value && value != "true" && value != "false") {
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, " takes no value (or =true/=false)"));
      }
      if (!has_value) value = "true";
    } else if (!has_value || value.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--", name, " needs a value: --", name, "=", spec->value_name));
    }
    std::vector<std::string>& values = values_[name];
    if (!values.empty() && !spec->repeatable) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, " given more than once"));
    }
    values.push_back(value);
  }
  return absl::OkStatus();
}

std::optional<int> Flags::ParseCommandLine(int argc, char** argv,
                                           bool positional) {
  absl::Status status = Parse(argc, argv);
  if (status.ok() && !positional && !positional_.empty()) {
    status = absl::InvalidArgumentError(
        absl::StrCat("unexpected argument '", positional_[0], "'"));
  }
  LogLevel level = LogLevel::kInfo;
  if (status.ok() && !ParseLogLevel(Get("log-level", "info"), &level)) {
    status = absl::InvalidArgumentError(
        "--log-level must be debug, info, warning or error");
  }
  if (!status.ok()) {
    std::fprintf(stderr, "%s: %s\n%s", program_.c_str(),
                 std::string(status.message()).c_str(), Usage().c_str());
    return 2;
  }
  if (Has("help")) {
    std::fputs(Usage().c_str(), stdout);
    return 0;
  }
  SetLogLevel(level);
  return std::nullopt;
}

std::string Flags::Usage() const {
  std::string out =
      absl::StrCat("Usage: ", program_, " [flags]\n", summary_, "\n\nFlags:\n");
  for (const FlagSpec& spec : specs_) {
    std::string left = absl::StrCat("  --", spec.name);
    if (!spec.value_name.empty()) absl::StrAppend(&left, "=", spec.value_name);
    if (left.size() < 28)
      left.resize(28, ' ');
    else
      absl::StrAppend(&left, "\n", std::string(28, ' '));
    absl::StrAppend(&out, left, spec.help,
                    spec.repeatable ? " (repeatable)" : "", "\n");
  }
  return out;
}

bool Flags::Has(const std::string& name) const {
  return values_.count(name) > 0;
}

std::string Flags::Get(const std::string& name,
                       const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second.back();
}

std::vector<std::string> Flags::GetAll(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>() : it->second;
}

absl::Status ParseBytes(const std::string& flag, const std::string& text,
                        uint64_t* bytes) {
  std::string digits = text;
  int shift = 0;
  if (!digits.empty()) {
    switch (digits.back()) {
      case 'K':
      case 'k':
        shift = 10;
        break;
      case 'M':
      case 'm':
        shift = 20;
        break;
      case 'G':
      case 'g':
        shift = 30;
        break;
      case 'T':
      case 't':
        shift = 40;
        break;
      default:
        break;
    }
    if (shift != 0) digits.pop_back();
  }
  uint64_t value = 0;
  if (digits.empty() ||
      digits.find_first_not_of("0123456789") != std::string::npos ||
      !absl::SimpleAtoi(digits, &value) || (value << shift) >> shift != value) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, "=", text,
                     ": expected a byte count such as 1048576 or 64M"));
  }
  *bytes = value << shift;
  return absl::OkStatus();
}

}  // namespace dst
