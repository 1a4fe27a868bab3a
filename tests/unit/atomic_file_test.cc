// WriteFileAtomically: a reader sees one whole version, also while two
// writers replace the same file at once.
#include "services/common/base/atomic_file.h"

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "tests/integration/test_cluster.h"

namespace dst {
namespace {

TEST(AtomicFileTest, WritesAndReadsBack) {
  TempDir dir;
  const std::string path = dir.path() + "/f";
  ASSERT_TRUE(WriteFileAtomically(path, "one").ok());
  ASSERT_TRUE(WriteFileAtomically(path, "two").ok());
  EXPECT_EQ(*ReadWholeFile(path), "two");
  EXPECT_TRUE(absl::IsNotFound(ReadWholeFile(dir.path() + "/none").status()));
  // No temporary file is left behind.
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    (void)entry;
    ++files;
  }
  EXPECT_EQ(files, 1);
}

TEST(AtomicFileTest, TwoWritersOfOnePathEachWriteWholeFiles) {
  TempDir dir;
  const std::string path = dir.path() + "/f";
  const std::string a(100000, 'a'), b(70000, 'b');
  std::atomic<int> failures{0};
  auto writer = [&](const std::string& contents) {
    for (int i = 0; i < 100; ++i) {
      if (!WriteFileAtomically(path, contents).ok()) ++failures;
    }
  };
  std::thread first(writer, a), second(writer, b);
  first.join();
  second.join();
  EXPECT_EQ(failures, 0);
  const std::string left = *ReadWholeFile(path);
  EXPECT_TRUE(left == a || left == b) << "a mix of " << left.size() << " bytes";
}

}  // namespace
}  // namespace dst
