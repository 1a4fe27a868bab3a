// Strict flag parsing and byte counts.
#include "services/common/base/flags.h"

#include <optional>
#include <vector>

#include <gtest/gtest.h>

#include "services/common/base/log.h"

namespace dst {
namespace {

Flags MakeFlags() {
  return Flags("prog", "summary",
               {{"listen", "ADDR", "where", true},
                {"size", "BYTES", "how big"},
                {"read-only", "", "flag"}});
}

absl::Status Parse(Flags& flags, std::vector<const char*> args) {
  args.insert(args.begin(), "prog");
  return flags.Parse(static_cast<int>(args.size()),
                     const_cast<char**>(args.data()));
}

TEST(FlagsTest, ParsesValuesRepeatsAndBooleans) {
  Flags flags = MakeFlags();
  ASSERT_TRUE(Parse(flags, {"--listen=a:1", "--listen=b:2", "--size=4M",
                            "--read-only", "cmd"})
                  .ok());
  EXPECT_EQ(flags.GetAll("listen"), (std::vector<std::string>{"a:1", "b:2"}));
  EXPECT_EQ(flags.Get("size"), "4M");
  EXPECT_EQ(flags.Get("read-only"), "true");
  EXPECT_EQ(flags.positional(), std::vector<std::string>{"cmd"});
}

TEST(FlagsTest, RefusesUnknownMissingValueAndRepeats) {
  Flags a = MakeFlags();
  EXPECT_EQ(Parse(a, {"--nope=1"}).message(), "unknown flag --nope");
  Flags b = MakeFlags();
  EXPECT_FALSE(Parse(b, {"--size"}).ok());
  Flags c = MakeFlags();
  EXPECT_FALSE(Parse(c, {"--size=1", "--size=2"}).ok());
  Flags d = MakeFlags();
  EXPECT_FALSE(Parse(d, {"--read-only=maybe"}).ok());
}

TEST(FlagsTest, ParsesByteCounts) {
  uint64_t v = 0;
  ASSERT_TRUE(ParseBytes("size", "512", &v).ok());
  EXPECT_EQ(v, 512u);
  ASSERT_TRUE(ParseBytes("size", "64M", &v).ok());
  EXPECT_EQ(v, 64u << 20);
  ASSERT_TRUE(ParseBytes("size", "2G", &v).ok());
  EXPECT_EQ(v, 2ull << 30);
  for (const char* bad :
       {"", "M", "-1", "1.5G", "12X", "99999999999999999999", "17179869184T"}) {
    EXPECT_FALSE(ParseBytes("size", bad, &v).ok()) << bad;
  }
}

}  // namespace
}  // namespace dst

namespace dst {
namespace {

std::optional<int> ParseLine(std::vector<const char*> args, bool positional) {
  Flags flags("prog", "summary",
              {{"size", "BYTES", "how big"},
               {"log-level", "LEVEL", "level"},
               {"help", "", "help"}});
  args.insert(args.begin(), "prog");
  return flags.ParseCommandLine(static_cast<int>(args.size()),
                                const_cast<char**>(args.data()), positional);
}

TEST(FlagsTest, CommandLineExitCodes) {
  EXPECT_EQ(ParseLine({"--size=1"}, false), std::nullopt) << "go on";
  EXPECT_EQ(ParseLine({"--help"}, false), 0);
  EXPECT_EQ(ParseLine({"--bogus"}, false), 2);
  EXPECT_EQ(ParseLine({"extra"}, false), 2) << "positional refused";
  EXPECT_EQ(ParseLine({"cmd"}, true), std::nullopt) << "positional allowed";
  EXPECT_EQ(ParseLine({"--log-level=loud"}, false), 2);
  EXPECT_EQ(ParseLine({"--log-level=debug"}, false), std::nullopt);
  EXPECT_TRUE(LogEnabled(LogLevel::kDebug)) << "the level is applied";
  SetLogLevel(LogLevel::kInfo);
}

}  // namespace
}  // namespace dst
