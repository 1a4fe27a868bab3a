// Fencing alone, over in-memory replicas (engine_fakes.h): the first claim
// of a run goes above the exporter's epoch and later negotiations keep it;
// an exporter claimed by another gateway, or a claim refused as ABORTED,
// fences the volume, which then claims and admits nothing; an exporter
// without metadata is admitted without an epoch; a geometry that does not
// fit is refused and changes nothing; an exporter smaller than the volume
// (away during a resize) is grown once claimed, or refused with why; a new
// mirror's generation is pushed to every replica.
#include "services/gateway/fencing.h"

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "tests/unit/engine_fakes.h"

namespace dst {
namespace {

class FencingTest : public EngineTest {
 protected:
  void Make(size_t n) {
    EngineTest::Make(n, /*decided=*/false);
    fencing_ = std::make_unique<Fencing>(*core_);
  }

  // What exporter `i` says when it negotiates: it holds `epoch` for
  // `owner`, and has `size` bytes.
  v1::NegotiateReply Negotiation(size_t i, uint64_t epoch,
                                 const std::string& owner,
                                 uint64_t size = kSize) {
    v1::NegotiateReply reply;
    v1::Geometry* g = reply.mutable_geometry();
    g->set_size(size);
    g->set_logical_block_size(512);
    g->set_max_transfer(kRegion);
    g->set_identity(absl::StrCat("disk", i));
    reply.mutable_metadata()->set_epoch(epoch);
    reply.mutable_metadata()->set_owner(owner);
    *reply.mutable_metadata()->mutable_generations() =
        replicas_[i]->generations;
    reply.set_instance(1000 + i);
    return reply;
  }
  std::string Fenced() {
    absl::MutexLock lock(&core_->mu);
    return core_->fenced;
  }

  std::unique_ptr<Fencing> fencing_;
};

TEST_F(FencingTest, TheFirstClaimGoesAboveTheExportersEpochAndLaterOnesKeepIt) {
  Make(2);
  absl::StatusOr<uint64_t> first = fencing_->Admit(0, Negotiation(0, 7, "old"));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, 8u);
  EXPECT_EQ(replicas_[0]->last_claim.epoch(), 8u);
  EXPECT_EQ(replicas_[0]->last_claim.owner(), "gw");
  // Another exporter, behind: the run's highest epoch, not its own + 1.
  absl::StatusOr<uint64_t> second =
      fencing_->Admit(1, Negotiation(1, 2, "old"));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(*second, 8u);
  // The first again (a new stream): the epoch it holds from this run.
  absl::StatusOr<uint64_t> again = fencing_->Admit(0, Negotiation(0, 8, "gw"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, 8u);
  EXPECT_EQ(Fenced(), "");
  absl::MutexLock lock(&core_->mu);
  EXPECT_EQ(core_->epoch, 8u);
  EXPECT_EQ(core_->geometry.size(), kSize);
}

TEST_F(FencingTest, AnExporterClaimedByAnotherGatewayFencesTheVolume) {
  Make(2);
  ASSERT_TRUE(fencing_->Admit(0, Negotiation(0, 3, "old")).ok());
  // Its next negotiation shows a newer epoch: another gateway took over.
  absl::StatusOr<uint64_t> taken =
      fencing_->Admit(0, Negotiation(0, 5, "other"));
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kAborted);
  EXPECT_NE(Fenced().find("claimed by 'other'"), std::string::npos) << Fenced();
  // Fenced: the other replica is neither claimed nor admitted.
  const int claims = replicas_[1]->claims;
  EXPECT_EQ(fencing_->Admit(1, Negotiation(1, 0, "")).status().code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(replicas_[1]->claims, claims);
  // The same epoch under another owner is a takeover too.
  Make(2);
  ASSERT_TRUE(fencing_->Admit(0, Negotiation(0, 3, "old")).ok());
  EXPECT_EQ(fencing_->Admit(0, Negotiation(0, 4, "other")).status().code(),
            absl::StatusCode::kAborted);
}

TEST_F(FencingTest, AClaimRefusedAsAbortedFencesTheVolume) {
  Make(2);
  replicas_[0]->claim_status = absl::AbortedError("epoch 9 is held by 'b'");
  EXPECT_EQ(fencing_->Admit(0, Negotiation(0, 3, "old")).status().code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(Fenced(), "epoch 9 is held by 'b'");
}

TEST_F(FencingTest, AnExporterWithoutMetadataIsAdmittedWithoutAnEpoch) {
  Make(2);
  replicas_[0]->claim_status = absl::UnimplementedError("no metadata");
  absl::StatusOr<uint64_t> epoch = fencing_->Admit(0, Negotiation(0, 0, ""));
  ASSERT_TRUE(epoch.ok()) << epoch.status();
  EXPECT_EQ(*epoch, 0u);
  EXPECT_EQ(Fenced(), "");
  // A claim that fails otherwise refuses the replica (retried), no fence.
  replicas_[1]->claim_status = absl::UnavailableError("exporter went away");
  EXPECT_EQ(fencing_->Admit(1, Negotiation(1, 0, "")).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(Fenced(), "");
}

TEST_F(FencingTest, AGeometryThatDoesNotFitIsRefusedAndChangesNothing) {
  Make(2);
  ASSERT_TRUE(fencing_->Admit(0, Negotiation(0, 1, "gw")).ok());
  const int claims = replicas_[1]->claims;
  v1::NegotiateReply larger_blocks = Negotiation(1, 1, "gw");
  larger_blocks.mutable_geometry()->set_logical_block_size(4096);
  absl::StatusOr<uint64_t> refused = fencing_->Admit(1, larger_blocks);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition)
      << refused.status();
  EXPECT_EQ(replicas_[1]->claims, claims) << "refused before any claim";
  absl::MutexLock lock(&core_->mu);
  EXPECT_EQ(core_->geometry.size(), kSize);
  EXPECT_EQ(core_->state.replica(1).sync, SyncState::kUnknown);
}

TEST_F(FencingTest, ASmallerExporterIsGrownToTheVolumeUnderItsEpoch) {
  Make(2);
  ASSERT_TRUE(fencing_->Admit(0, Negotiation(0, 1, "gw")).ok());
  absl::StatusOr<uint64_t> epoch =
      fencing_->Admit(1, Negotiation(1, 1, "gw", kSize - kRegion));
  ASSERT_TRUE(epoch.ok()) << epoch.status();
  EXPECT_EQ(replicas_[1]->grows, 1);
  EXPECT_EQ(replicas_[1]->last_grow.size(), kSize);
  EXPECT_EQ(replicas_[1]->last_grow.epoch(), *epoch) << "grown once claimed";
  absl::MutexLock lock(&core_->mu);
  EXPECT_EQ(core_->slots[1]->size, kSize);
  EXPECT_TRUE(core_->state.replica(1).admitted);
}

TEST_F(FencingTest, ASmallerExporterThatCannotGrowIsRefusedWithWhy) {
  Make(2);
  ASSERT_TRUE(fencing_->Admit(0, Negotiation(0, 1, "gw")).ok());
  replicas_[1]->grow_status =
      absl::FailedPreconditionError("a block device of 28672 bytes");
  absl::StatusOr<uint64_t> refused =
      fencing_->Admit(1, Negotiation(1, 1, "gw", kSize - kRegion));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find(
                "could not grow: a block device of 28672 bytes"),
            absl::string_view::npos)
      << refused.status();
  absl::MutexLock lock(&core_->mu);
  EXPECT_EQ(core_->geometry.size(), kSize);
  EXPECT_EQ(core_->state.replica(1).sync, SyncState::kUnknown);
  EXPECT_FALSE(core_->state.replica(1).admitted);
}

TEST_F(FencingTest, ANewMirrorsGenerationIsPushedToEveryReplica) {
  Make(2);
  ASSERT_TRUE(fencing_->Admit(0, Negotiation(0, 0, "")).ok());
  ASSERT_TRUE(fencing_->Admit(1, Negotiation(1, 0, "")).ok());
  {
    absl::MutexLock lock(&core_->mu);
    ASSERT_FALSE(core_->state.decided()) << "not before the generation is out";
  }
  fencing_->PushGenerations();
  absl::MutexLock lock(&core_->mu);
  EXPECT_TRUE(core_->state.decided());
  ASSERT_FALSE(core_->state.generations().empty());
  for (MemReplica* replica : replicas_) {
    EXPECT_TRUE(replica->last_claim.set_generations());
    EXPECT_EQ(replica->last_claim.epoch(), 1u);
    ASSERT_GE(replica->generations.size(), 1);
    EXPECT_EQ(replica->generations[0], core_->state.generations()[0]);
  }
}

}  // namespace
}  // namespace dst
