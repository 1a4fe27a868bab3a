// crash_sim: runs the seeded crash simulation (crash_sim.h) from the
// command line. One seed with its whole trace:
//   crash_sim --seed=N --verbose
// Many seeds, for a count or for a time (tests/crash/soak.sh):
//   crash_sim --first=S --seeds=N
//   crash_sim --first=S --seconds=T
// Every failure prints its seed, what was violated and the steps before
// it; the last line is "seeds=N failures=F". Exit 1 on any failure.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

#include "services/common/base/flags.h"
#include "tests/crash/crash_sim.h"

namespace {

std::atomic<uint64_t> g_current_seed{0};

// A crash of the engine itself (an assertion, a sanitizer's abort) still
// names the seed that caused it.
void OnFatalSignal(int signal) {
  char line[96];
  const uint64_t seed = g_current_seed.load();
  int n = std::snprintf(line, sizeof(line),
                        "\ncrash_sim: signal %d while running seed=%llu\n",
                        signal, static_cast<unsigned long long>(seed));
  if (n > 0) (void)!::write(STDERR_FILENO, line, static_cast<size_t>(n));
  ::signal(signal, SIG_DFL);
  ::raise(signal);
}

}  // namespace

int main(int argc, char** argv) {
  dst::Flags flags(
      "crash_sim", "Runs dst's seeded crash simulation.",
      {{"seed", "N", "run this one seed (replays it exactly)"},
       {"first", "S", "the first seed of a series (default 1)"},
       {"seeds", "N", "run this many seeds (default 100)"},
       {"seconds", "T", "run seeds for this long instead of --seeds"},
       {"replicas", "2|3", "replicas (default: as the seed says)"},
       {"steps", "N", "steps per round of faults (default 1500)"},
       {"verbose", "", "print every step as it happens"}});
  if (std::optional<int> exit = flags.ParseCommandLine(argc, argv, false)) {
    return *exit;
  }
  auto number = [&flags](const std::string& name, uint64_t fallback,
                         uint64_t* out) {
    *out = fallback;
    if (!flags.Has(name)) return true;
    if (!absl::SimpleAtoi(flags.Get(name), out)) {
      std::fprintf(stderr, "crash_sim: --%s must be a number\n", name.c_str());
      return false;
    }
    return true;
  };
  uint64_t seed, first, count, seconds, replicas, steps;
  if (!number("seed", 0, &seed) || !number("first", 1, &first) ||
      !number("seeds", 100, &count) || !number("seconds", 0, &seconds) ||
      !number("replicas", 0, &replicas) || !number("steps", 1500, &steps)) {
    return 2;
  }
  if (replicas != 0 && replicas != 2 && replicas != 3) {
    std::fprintf(stderr, "crash_sim: --replicas must be 2 or 3\n");
    return 2;
  }
  for (int s : {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL}) {
    ::signal(s, OnFatalSignal);
  }
  if (flags.Has("seed")) {
    first = seed;
    count = 1;
    seconds = 0;
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(seconds);
  uint64_t run = 0, failures = 0;
  dst::sim::SimStats total;
  for (uint64_t s = first;; ++s) {
    if (seconds > 0 ? absl::Now() >= deadline : run >= count) break;
    dst::sim::SimOptions options = dst::sim::OptionsForSeed(s);
    if (replicas != 0) options.replicas = static_cast<int>(replicas);
    options.steps_per_round = static_cast<int>(steps);
    options.verbose = flags.Has("verbose");
    g_current_seed = s;
    dst::sim::SimResult result = dst::sim::RunSeed(s, options);
    ++run;
    total.steps += result.stats.steps;
    total.gateway_crashes += result.stats.gateway_crashes;
    total.power_cuts += result.stats.power_cuts;
    total.writes += result.stats.writes;
    total.resizes += result.stats.resizes;
    if (!result.ok) {
      ++failures;
      std::printf("FAIL seed=%llu (%d replicas): %s\n",
                  static_cast<unsigned long long>(s), options.replicas,
                  result.failure.c_str());
      if (!options.verbose) {
        std::printf("the last steps of seed %llu:\n%s",
                    static_cast<unsigned long long>(s), result.trace.c_str());
      }
      std::printf("replay: crash_sim --seed=%llu --verbose\n",
                  static_cast<unsigned long long>(s));
      std::fflush(stdout);
    }
  }
  std::printf(
      "steps=%llu writes=%llu resizes=%llu gateway_crashes=%llu "
      "power_cuts=%llu\n"
      "seeds=%llu failures=%llu\n",
      static_cast<unsigned long long>(total.steps),
      static_cast<unsigned long long>(total.writes),
      static_cast<unsigned long long>(total.resizes),
      static_cast<unsigned long long>(total.gateway_crashes),
      static_cast<unsigned long long>(total.power_cuts),
      static_cast<unsigned long long>(run),
      static_cast<unsigned long long>(failures));
  return failures == 0 ? 0 : 1;
}
