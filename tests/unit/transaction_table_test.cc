// The pre-sized in-flight table: ids, bounds, late-reply detection.
#include "services/common/transport/transaction_table.h"

#include <set>
#include <vector>

#include <gtest/gtest.h>

namespace dst {
namespace {

TEST(TransactionTableTest, CapacityRoundsUpAndBounds) {
  TransactionTable table(5);
  EXPECT_EQ(table.capacity(), 8u);
  std::vector<Transaction*> all;
  for (int i = 0; i < 8; ++i) {
    Transaction* t = table.Allocate();
    ASSERT_NE(t, nullptr);
    all.push_back(t);
  }
  EXPECT_EQ(table.Allocate(), nullptr) << "a full table must refuse, not grow";
  EXPECT_EQ(table.in_use(), 8u);
  table.Release(all[3]);
  EXPECT_NE(table.Allocate(), nullptr);
}

TEST(TransactionTableTest, IdsAreUniqueAndNeverZero) {
  TransactionTable table(4);
  std::set<uint64_t> ids;
  for (int i = 0; i < 1000; ++i) {
    Transaction* t = table.Allocate();
    ASSERT_NE(t->id, 0u);
    EXPECT_TRUE(ids.insert(t->id).second) << "id reused: " << t->id;
    EXPECT_EQ(table.Find(t->id), t);
    table.Release(t);
  }
}

TEST(TransactionTableTest, LateReplyForReusedSlotDoesNotMatch) {
  TransactionTable table(1);
  Transaction* first = table.Allocate();
  uint64_t old_id = first->id;
  table.Release(first);
  Transaction* second = table.Allocate();
  ASSERT_EQ(second, first) << "same slot reused";
  EXPECT_EQ(table.Find(old_id), nullptr) << "late reply must not match";
  EXPECT_EQ(table.Find(second->id), second);
  EXPECT_EQ(table.Find(0), nullptr);
  EXPECT_EQ(table.Find(12345), nullptr);
}

TEST(TransactionTableTest, ReleaseDropsRequestAndCallback) {
  TransactionTable table(2);
  Transaction* t = table.Allocate();
  t->request.set_offset(4096);
  // A payload whose bytes say when they are freed.
  static char bytes[1024];
  bool freed = false;
  t->data = Payload::Share({grpc::Slice(
      bytes, sizeof(bytes),
      [](void* flag) { *static_cast<bool*>(flag) = true; }, &freed)});
  t->done = [](v1::Reply&&, Payload&&) {};
  table.Release(t);
  EXPECT_EQ(t->request.offset(), 0u);
  EXPECT_TRUE(freed) << "a freed slot keeps a payload alive";
  EXPECT_TRUE(t->data.empty());
  EXPECT_FALSE(t->done);
  int visited = 0;
  table.ForEach([&](Transaction&) { ++visited; });
  EXPECT_EQ(visited, 0);
}

}  // namespace
}  // namespace dst
