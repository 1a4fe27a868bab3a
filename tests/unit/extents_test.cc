// MergeExtents: a volume's block status from its replicas' answers.
#include "services/gateway/extents.h"

#include <gtest/gtest.h>

namespace dst {
namespace {

constexpr uint32_t kData = 0;
constexpr uint32_t kHoleZero = kExtentHole | kExtentZero;

using Extents = std::vector<Extent>;

TEST(ExtentsTest, OneReplicaIsItsOwnAnswerWithNeighboursJoined) {
  EXPECT_EQ(MergeExtents({{{4096, kData}, {4096, kData}, {8192, kHoleZero}}}),
            (Extents{{8192, kData}, {8192, kHoleZero}}));
}

TEST(ExtentsTest, ZeroOnlyWhereEveryReplicaReadsZero) {
  // Replica 0: a hole over everything; replica 1 holds data in the middle.
  EXPECT_EQ(
      MergeExtents({{{12288, kHoleZero}},
                    {{4096, kHoleZero}, {4096, kData}, {4096, kHoleZero}}}),
      (Extents{{4096, kHoleZero}, {4096, kData}, {4096, kHoleZero}}));
}

TEST(ExtentsTest, HoleOnlyWhereEveryReplicaHasOne) {
  // Allocated zeroes on one replica, a hole on the other: zero, not hole.
  EXPECT_EQ(MergeExtents({{{8192, kHoleZero}}, {{8192, kExtentZero}}}),
            (Extents{{8192, kExtentZero}}));
  EXPECT_EQ(MergeExtents({{{8192, kExtentHole}}, {{8192, kHoleZero}}}),
            (Extents{{8192, kExtentHole}}))
      << "a hole that does not read as zero stays a hole without zero";
}

TEST(ExtentsTest, DifferentBoundariesAreSplitWhereEitherChanges) {
  EXPECT_EQ(MergeExtents({{{4096, kData}, {12288, kHoleZero}},
                          {{8192, kData}, {8192, kHoleZero}}}),
            (Extents{{8192, kData}, {8192, kHoleZero}}));
  EXPECT_EQ(MergeExtents({{{6144, kHoleZero}, {2048, kData}},
                          {{2048, kData}, {6144, kHoleZero}}}),
            (Extents{{2048, kData}, {4096, kHoleZero}, {2048, kData}}));
}

TEST(ExtentsTest, TheAnswerEndsWhereTheShortestEnds) {
  EXPECT_EQ(MergeExtents({{{1 << 20, kHoleZero}}, {{4096, kHoleZero}}}),
            (Extents{{4096, kHoleZero}}));
}

TEST(ExtentsTest, NoReplicaOrAnEmptyAnswerSaysNothing) {
  EXPECT_TRUE(MergeExtents({}).empty());
  EXPECT_TRUE(MergeExtents({{{4096, kData}}, {}}).empty());
  EXPECT_EQ(MergeExtents({{{0, kData}, {4096, kHoleZero}}}),
            (Extents{{4096, kHoleZero}}))
      << "an empty extent says nothing";
}

}  // namespace
}  // namespace dst
