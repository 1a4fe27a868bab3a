// Status -> errno seen by NBD clients.
#include "nbdkit-plugin/errno_map.h"

#include <cerrno>

#include <gtest/gtest.h>

namespace dst {
namespace {

TEST(ErrnoMapTest, MapsEachStatusToItsErrno) {
  EXPECT_EQ(StatusToErrno(0, v1::OP_READ), 0);
  EXPECT_EQ(StatusToErrno(3 /*INVALID_ARGUMENT*/, v1::OP_READ), EINVAL);
  EXPECT_EQ(StatusToErrno(11 /*OUT_OF_RANGE*/, v1::OP_READ), EINVAL);
  EXPECT_EQ(StatusToErrno(11 /*OUT_OF_RANGE*/, v1::OP_WRITE), ENOSPC);
  EXPECT_EQ(StatusToErrno(9 /*FAILED_PRECONDITION*/, v1::OP_WRITE), EROFS);
  EXPECT_EQ(StatusToErrno(7 /*PERMISSION_DENIED*/, v1::OP_WRITE), EPERM);
  EXPECT_EQ(StatusToErrno(16 /*UNAUTHENTICATED*/, v1::OP_READ), EPERM);
  EXPECT_EQ(StatusToErrno(8 /*RESOURCE_EXHAUSTED*/, v1::OP_WRITE), ENOSPC);
  EXPECT_EQ(StatusToErrno(14 /*UNAVAILABLE*/, v1::OP_READ), EIO);
  EXPECT_EQ(StatusToErrno(13 /*INTERNAL*/, v1::OP_FLUSH), EIO);
  EXPECT_EQ(StatusToErrno(12 /*UNIMPLEMENTED*/, v1::OP_TRIM), EINVAL);
  EXPECT_EQ(StatusToErrno(12 /*UNIMPLEMENTED*/, v1::OP_WRITE_ZEROES), ENOTSUP)
      << "a zero that cannot be fast: the client may zero another way";
}

}  // namespace
}  // namespace dst
