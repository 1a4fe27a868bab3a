// Ordering of overlapping modifications.
#include "services/gateway/range_serializer.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace dst {
namespace {

TEST(RangeSerializerTest, DisjointRangesRunAtOnce) {
  RangeSerializer s;
  std::vector<int> started;
  s.Acquire(0, 10, [&] { started.push_back(1); });
  s.Acquire(10, 10, [&] { started.push_back(2); });
  EXPECT_EQ(started, (std::vector<int>{1, 2}));
  EXPECT_EQ(s.in_flight(), 2u);
}

TEST(RangeSerializerTest, OverlappingRangeWaitsForTheFirst) {
  RangeSerializer s;
  std::vector<int> started;
  s.Acquire(0, 10, [&] { started.push_back(1); });
  s.Acquire(5, 10, [&] { started.push_back(2); });
  EXPECT_EQ(started, std::vector<int>{1});
  EXPECT_EQ(s.waiting(), 1u);
  s.Release(0, 10);
  EXPECT_EQ(started, (std::vector<int>{1, 2}));
  s.Release(5, 10);
  EXPECT_EQ(s.in_flight(), 0u);
}

TEST(RangeSerializerTest, ArrivalOrderHoldsThroughWaiters) {
  // C overlaps only the waiting B, not the running A: it must still wait
  // for B, or C could reach a replica before B.
  RangeSerializer s;
  std::string order;
  s.Acquire(0, 10, [&] { order += 'A'; });
  s.Acquire(5, 10, [&] { order += 'B'; });
  s.Acquire(12, 10, [&] { order += 'C'; });
  s.Acquire(100, 1, [&] { order += 'D'; });  // independent: runs now
  EXPECT_EQ(order, "AD");
  s.Release(0, 10);
  EXPECT_EQ(order, "ADB");
  s.Release(5, 10);
  EXPECT_EQ(order, "ADBC");
}

TEST(RangeSerializerTest, IdenticalRangesRunOneAtATimeInOrder) {
  RangeSerializer s;
  std::string order;
  for (char c : std::string("xyz"))
    s.Acquire(0, 4096, [&order, c] { order += c; });
  EXPECT_EQ(order, "x");
  s.Release(0, 4096);
  EXPECT_EQ(order, "xy");
  s.Release(0, 4096);
  EXPECT_EQ(order, "xyz");
}

}  // namespace
}  // namespace dst
