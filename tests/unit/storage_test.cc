// FileStorage against a real file in a temporary directory.
#include "services/exporter/storage.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>

namespace dst {
namespace {

class StorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dst-storage-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/disk.img";
  }
  void TearDown() override {
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }
  std::unique_ptr<Storage> Open(uint64_t size, bool read_only = false,
                                FileSyscalls syscalls = {}) {
    FileStorageOptions options;
    options.path = path_;
    options.size = size;
    options.read_only = read_only;
    options.syscalls = std::move(syscalls);
    auto storage = OpenFileStorage(options);
    EXPECT_TRUE(storage.ok()) << storage.status();
    return storage.ok() ? std::move(*storage) : nullptr;
  }
  std::string dir_, path_;
};

// A file on tmpfs lives in memory (the exporter may run its I/O inline);
// a file elsewhere does not.
TEST_F(StorageTest, KnowsWhetherItsFileLivesInMemory) {
  struct statfs shm;
  ASSERT_EQ(statfs("/dev/shm", &shm), 0)
      << "this test needs /dev/shm: " << std::strerror(errno);
  ASSERT_EQ(shm.f_type, TMPFS_MAGIC) << "this test needs /dev/shm on tmpfs";
  char tmpl[] = "/dev/shm/dst-storage-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string shm_dir = tmpl;
  FileStorageOptions options;
  options.path = shm_dir + "/disk.img";
  options.size = 1 << 20;
  auto in_memory = OpenFileStorage(options);
  ASSERT_TRUE(in_memory.ok()) << in_memory.status();
  EXPECT_TRUE((*in_memory)->in_memory());
  in_memory->reset();
  unlink(options.path.c_str());
  rmdir(shm_dir.c_str());

  struct statfs here;
  ASSERT_EQ(statfs(dir_.c_str(), &here), 0);
  const bool dir_in_memory =
      here.f_type == TMPFS_MAGIC || here.f_type == RAMFS_MAGIC;
  EXPECT_EQ(Open(1 << 20)->in_memory(), dir_in_memory) << dir_;
}

TEST_F(StorageTest, CreatesWithSizeAndReadsZeroes) {
  auto storage = Open(1 << 20);
  ASSERT_NE(storage, nullptr);
  EXPECT_EQ(storage->size(), 1u << 20);
  std::string buf(4096, 'x');
  ASSERT_TRUE(storage->Read((1 << 20) - 4096, 4096, buf.data()).ok());
  EXPECT_EQ(buf, std::string(4096, '\0'));
}

TEST_F(StorageTest, WriteReadZeroTrimFlush) {
  auto storage = Open(1 << 20);
  ASSERT_NE(storage, nullptr);
  std::string data(8192, 'q');
  ASSERT_TRUE(storage->Write(4096, Payload(data), /*fua=*/true).ok());
  std::string back(8192, 0);
  ASSERT_TRUE(storage->Read(4096, 8192, back.data()).ok());
  EXPECT_EQ(back, data);
  ASSERT_TRUE(storage->WriteZeroes(4096, 4096, /*may_trim=*/false, false).ok());
  ASSERT_TRUE(storage->Read(4096, 8192, back.data()).ok());
  EXPECT_EQ(back.substr(0, 4096), std::string(4096, '\0'));
  EXPECT_EQ(back.substr(4096), std::string(4096, 'q'));
  ASSERT_TRUE(storage->Trim(8192, 4096, false).ok());
  ASSERT_TRUE(storage->Flush().ok());
  // Trimmed data is undefined by contract; a punched hole reads as zeroes.
  ASSERT_TRUE(storage->Read(8192, 4096, back.data()).ok());
  EXPECT_EQ(back.substr(0, 4096), std::string(4096, '\0'));
}

TEST_F(StorageTest, APayloadOfManySlicesIsWrittenInOrder) {
  // More pieces than one pwritev takes (IOV_MAX, 1024 here), each of its
  // own bytes, as a received payload arrives in slices.
  auto storage = Open(4 << 20);
  ASSERT_NE(storage, nullptr);
  std::vector<grpc::Slice> slices;
  std::string expected;
  for (int i = 0; i < 2500; ++i) {
    const std::string piece(i % 3 == 0 ? 1 : 1000,
                            static_cast<char>('a' + i % 26));
    expected += piece;
    slices.emplace_back(piece);
  }
  ASSERT_TRUE(
      storage->Write(512, Payload::Share(std::move(slices)), true).ok());
  std::string back(expected.size(), '\0');
  ASSERT_TRUE(storage->Read(512, back.size(), back.data()).ok());
  EXPECT_EQ(back, expected);
}

TEST_F(StorageTest, RefusesMissingFileWithoutSize) {
  FileStorageOptions options;
  options.path = path_;
  EXPECT_EQ(OpenFileStorage(options).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(StorageTest, RefusesAFileSmallerThanItsSize) {
  ASSERT_NE(Open(1 << 20), nullptr);
  FileStorageOptions options;
  options.path = path_;
  options.size = 2 << 20;
  auto storage = OpenFileStorage(options);
  EXPECT_EQ(storage.status().code(), absl::StatusCode::kInvalidArgument);
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 1 << 20) << "a refused open must not resize the file";
}

// A file grown by `dstctl resize` is larger than the --size it was created
// with: a restarted exporter serves it at its own size.
TEST_F(StorageTest, ServesAFileLargerThanItsSizeAtItsOwnSize) {
  ASSERT_NE(Open(2 << 20), nullptr);
  std::unique_ptr<Storage> storage = Open(1 << 20);
  ASSERT_NE(storage, nullptr);
  EXPECT_EQ(storage->size(), 2u << 20);
}

TEST_F(StorageTest, GrowsAFileWithZeroesAndNeverShrinksIt) {
  std::unique_ptr<Storage> storage = Open(1 << 20);
  ASSERT_NE(storage, nullptr);
  const std::string data(4096, 'd');
  ASSERT_TRUE(storage->Write((1 << 20) - 4096, Payload(data), false).ok());
  absl::StatusOr<uint64_t> grown = storage->Grow(3 << 20);
  ASSERT_TRUE(grown.ok()) << grown.status();
  EXPECT_EQ(*grown, 3u << 20);
  EXPECT_EQ(storage->size(), 3u << 20);
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 3 << 20);
  std::string tail(8192, 'x');
  ASSERT_TRUE(storage->Read((1 << 20) - 4096, tail.size(), tail.data()).ok());
  EXPECT_EQ(tail.substr(0, 4096), data) << "growth kept the old end";
  EXPECT_EQ(tail.substr(4096), std::string(4096, '\0'))
      << "the new range reads as zeroes";
  // Smaller than the file: nothing changes, the size now is answered.
  grown = storage->Grow(2 << 20);
  ASSERT_TRUE(grown.ok()) << grown.status();
  EXPECT_EQ(*grown, 3u << 20);
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 3 << 20) << "Grow must never shrink a file";
}

TEST_F(StorageTest, AFileThatCannotGrowSaysWhyAndKeepsItsSize) {
  ASSERT_NE(Open(1 << 20), nullptr);
  std::unique_ptr<Storage> storage = Open(0, /*read_only=*/true);
  ASSERT_NE(storage, nullptr);
  absl::StatusOr<uint64_t> grown = storage->Grow(2 << 20);
  EXPECT_EQ(grown.status().code(), absl::StatusCode::kFailedPrecondition)
      << grown.status();
  EXPECT_EQ(storage->size(), 1u << 20);
}

TEST_F(StorageTest, RefusesDirectory) {
  FileStorageOptions options;
  options.path = dir_;
  EXPECT_EQ(OpenFileStorage(options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(StorageTest, ReadOnlyOpenCannotWrite) {
  ASSERT_NE(Open(1 << 20), nullptr);
  auto storage = Open(0, /*read_only=*/true);
  ASSERT_NE(storage, nullptr);
  EXPECT_FALSE(storage->Write(0, Payload(std::string(512, 'a')), false).ok());
}

// On a file system that can neither punch holes nor zero ranges (ramfs),
// a trim used to leave the data where another replica read zeroes.
TEST_F(StorageTest, ATrimReadsAsZeroesWhereNothingCanBeDeallocated) {
  FileSyscalls unsupported;
  unsupported.fallocate = [](int, int, off_t, off_t) {
    errno = EOPNOTSUPP;
    return -1;
  };
  auto storage = Open(1 << 20, false, unsupported);
  ASSERT_NE(storage, nullptr);
  ASSERT_TRUE(
      storage->Write(4096, Payload(std::string(8192, 'd')), false).ok());
  ASSERT_TRUE(storage->Trim(4096, 4096, /*fua=*/false).ok());
  std::string back(8192, '?');
  ASSERT_TRUE(storage->Read(4096, back.size(), back.data()).ok());
  EXPECT_EQ(back, std::string(4096, '\0') + std::string(4096, 'd'));
}

// Block status of a sparse file (this test's directory is on /tmp: ext4
// here, whose SEEK_DATA/SEEK_HOLE work in 4 KiB blocks).
TEST_F(StorageTest, ExtentsFollowTheFilesHolesAndData) {
  auto storage = Open(4 << 20);
  ASSERT_NE(storage, nullptr);
  ASSERT_TRUE(
      storage->Write(1 << 20, Payload(std::string(8192, 'd')), false).ok());
  constexpr uint32_t kHoleZero = kExtentHole | kExtentZero;
  auto extents = storage->Extents(0, 4 << 20, 64);
  ASSERT_TRUE(extents.ok()) << extents.status();
  EXPECT_EQ(*extents, (std::vector<Extent>{{1 << 20, kHoleZero},
                                           {8192, 0},
                                           {(3 << 20) - 8192, kHoleZero}}));
  // From inside the data, and a range that ends inside a hole.
  extents = storage->Extents((1 << 20) + 4096, 8192, 64);
  ASSERT_TRUE(extents.ok());
  EXPECT_EQ(*extents, (std::vector<Extent>{{4096, 0}, {4096, kHoleZero}}));
  // At most max_extents: a shorter answer.
  extents = storage->Extents(0, 4 << 20, 1);
  ASSERT_TRUE(extents.ok());
  EXPECT_EQ(*extents, (std::vector<Extent>{{1 << 20, kHoleZero}}));
  // After a trim the range is a hole again.
  ASSERT_TRUE(storage->Trim(1 << 20, 8192, false).ok());
  extents = storage->Extents(0, 4 << 20, 64);
  ASSERT_TRUE(extents.ok());
  EXPECT_EQ(*extents, (std::vector<Extent>{{4 << 20, kHoleZero}}));
}

// A fast zero zeroes only by deallocating or zeroing a range; where the
// file system can do neither it fails (UNIMPLEMENTED) and writes nothing,
// while a plain write-zeroes falls back to writing zeroes.
TEST_F(StorageTest, AFastZeroFailsWithoutWritingWhereZeroingIsNotCheap) {
  auto fallocate_works = std::make_shared<bool>(true);
  FileSyscalls switchable;
  switchable.fallocate = [fallocate_works](int fd, int mode, off_t offset,
                                           off_t length) {
    if (*fallocate_works) return ::fallocate(fd, mode, offset, length);
    errno = EOPNOTSUPP;
    return -1;
  };
  auto storage = Open(1 << 20, false, switchable);
  ASSERT_NE(storage, nullptr);
  ASSERT_TRUE(storage->can_fast_zero());
  ASSERT_TRUE(storage->Write(0, Payload(std::string(16384, 'd')), false).ok());
  ASSERT_TRUE(storage->FastZero(0, 4096, /*may_trim=*/true, false).ok());
  ASSERT_TRUE(storage->FastZero(4096, 4096, /*may_trim=*/false, false).ok());
  *fallocate_works = false;
  absl::Status refused = storage->FastZero(8192, 4096, true, false);
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnimplemented) << refused;
  std::string back(16384, '?');
  ASSERT_TRUE(storage->Read(0, back.size(), back.data()).ok());
  EXPECT_EQ(back, std::string(8192, '\0') + std::string(8192, 'd'))
      << "zeroed where it was fast; nothing written where it was refused";
  ASSERT_TRUE(storage->WriteZeroes(8192, 4096, true, false).ok());
  ASSERT_TRUE(storage->Read(0, back.size(), back.data()).ok());
  EXPECT_EQ(back, std::string(12288, '\0') + std::string(4096, 'd'));
}

// A scan in pieces walks a run of data once (SEEK_HOLE walks tmpfs's page
// cache to the next hole); a hole punched since (a trim, or a write-zeroes
// that may trim, which punches) is seen by the next query.
TEST_F(StorageTest, ARunOfDataIsWalkedOnceUntilAHoleIsPunched) {
  auto holes_sought = std::make_shared<int>(0);
  FileSyscalls counting;
  counting.lseek = [holes_sought](int fd, off_t offset, int whence) {
    if (whence == SEEK_HOLE) ++*holes_sought;
    return ::lseek(fd, offset, whence);
  };
  auto storage = Open(4 << 20, false, counting);
  ASSERT_NE(storage, nullptr);
  ASSERT_TRUE(
      storage->Write(0, Payload(std::string(2 << 20, 'd')), false).ok());
  for (uint64_t at = 0; at < (2 << 20); at += 256 << 10) {
    auto extents = storage->Extents(at, 256 << 10, 64);
    ASSERT_TRUE(extents.ok());
    EXPECT_EQ(*extents, (std::vector<Extent>{{256 << 10, 0}}));
  }
  EXPECT_EQ(*holes_sought, 1) << "one walk for the whole run";
  ASSERT_TRUE(storage
                  ->WriteZeroes(1 << 20, 4096, /*may_trim=*/true,
                                /*fua=*/false)
                  .ok());
  auto extents = storage->Extents(1 << 20, 8192, 64);
  ASSERT_TRUE(extents.ok());
  EXPECT_EQ(*extents,
            (std::vector<Extent>{{4096, kExtentHole | kExtentZero}, {4096, 0}}))
      << "a write-zeroes that may trim punches a hole, seen at once";
  EXPECT_EQ(*holes_sought, 2);
}

// A file system that cannot tell holes (SEEK_DATA unsupported) is all data.
TEST_F(StorageTest, ExtentsAreDataWhereTheFileSystemCannotSay) {
  FileSyscalls no_seek;
  no_seek.lseek = [](int, off_t, int) -> off_t {
    errno = EINVAL;
    return -1;
  };
  auto storage = Open(1 << 20, false, no_seek);
  ASSERT_NE(storage, nullptr);
  auto extents = storage->Extents(4096, 8192, 64);
  ASSERT_TRUE(extents.ok());
  EXPECT_EQ(*extents, (std::vector<Extent>{{8192, 0}}));
}

// A write that makes no progress is an error, not an endless retry.
TEST_F(StorageTest, AWriteThatWritesNothingFails) {
  FileSyscalls stuck;
  stuck.pwritev2 = [](int, const iovec*, int, off_t, int) -> ssize_t {
    return 0;
  };
  auto storage = Open(1 << 20, false, stuck);
  ASSERT_NE(storage, nullptr);
  absl::Status status =
      storage->Write(0, Payload(std::string(512, 'a')), false);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("wrote nothing"), std::string::npos)
      << status;
}

// A file cut short under the exporter: a read past its end used to return
// zeroes as if they were the data.
TEST_F(StorageTest, AReadPastAShrunkFileIsAnError) {
  auto storage = Open(1 << 20);
  ASSERT_NE(storage, nullptr);
  ASSERT_EQ(truncate(path_.c_str(), 4096), 0) << std::strerror(errno);
  std::string back(512, '?');
  EXPECT_TRUE(storage->Read(0, back.size(), back.data()).ok());
  absl::Status past = storage->Read(8192, back.size(), back.data());
  EXPECT_TRUE(absl::IsDataLoss(past)) << past;
}

}  // namespace
}  // namespace dst
