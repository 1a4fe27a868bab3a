// A deliberate data race, built only in the TSan build: scripts/test.sh
// runs it with the TSan pass's own options and suppressions and requires a
// report, so a pass that silently stopped seeing races (a wrong option, a
// suppression too wide, a build without -fsanitize=thread) fails.
#include <cstdio>
#include <thread>

namespace {
int counter = 0;  // written by two threads without a lock, on purpose
}

int main() {
  std::thread other([] { ++counter; });
  ++counter;
  other.join();
  std::printf("counter %d\n", counter);
  return 0;
}
