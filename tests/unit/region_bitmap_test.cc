// RegionBitmap: set, clear, merge, scan with wrap-around, and the byte form
// the state file keeps.
#include "services/gateway/region_bitmap.h"

#include <gtest/gtest.h>

namespace dst {
namespace {

TEST(RegionBitmapTest, SetReportsChangesAndCounts) {
  RegionBitmap bits(20);
  EXPECT_TRUE(bits.Set(3, 5));
  EXPECT_FALSE(bits.Set(4, 5));
  EXPECT_TRUE(bits.Set(5, 6));
  EXPECT_EQ(bits.count(), 4u);
  EXPECT_TRUE(bits.AllClear(0, 2));
  EXPECT_FALSE(bits.AllClear(0, 3));
  bits.Clear(4);
  bits.Clear(4);
  EXPECT_EQ(bits.count(), 3u);
  EXPECT_FALSE(bits.Test(4));
  EXPECT_TRUE(bits.Set(19, 25));  // bits past the end are ignored
  EXPECT_EQ(bits.count(), 4u);
  EXPECT_FALSE(bits.Set(20, 25));
}

TEST(RegionBitmapTest, NextSetWrapsAroundWithoutSkippingTheStart) {
  RegionBitmap bits(10);
  EXPECT_EQ(bits.NextSet(0), 10u);
  bits.Set(1, 1);
  bits.Set(8, 8);
  EXPECT_EQ(bits.NextSet(0), 1u);
  EXPECT_EQ(bits.NextSet(2), 8u);
  EXPECT_EQ(bits.NextSet(9), 1u);
  EXPECT_EQ(bits.NextSet(10), 1u);
  RegionBitmap big(1000);
  big.Set(3, 3);
  EXPECT_EQ(big.NextSet(500), 3u);
}

TEST(RegionBitmapTest, MergeOrsAndCounts) {
  RegionBitmap a(40), b(40);
  a.Set(0, 9);
  b.Set(5, 19);
  EXPECT_TRUE(a.Merge(b));
  EXPECT_EQ(a.count(), 20u);
  EXPECT_FALSE(a.Merge(b));
}

TEST(RegionBitmapTest, BytesRoundTripAndRefuseTheWrongSize) {
  RegionBitmap bits(13);
  bits.Set(0, 0);
  bits.Set(12, 12);
  RegionBitmap copy;
  ASSERT_TRUE(copy.FromBytes(13, bits.ToBytes()));
  EXPECT_EQ(copy.count(), 2u);
  EXPECT_TRUE(copy.Test(12));
  EXPECT_FALSE(copy.FromBytes(100, bits.ToBytes()));
}

}  // namespace
}  // namespace dst
