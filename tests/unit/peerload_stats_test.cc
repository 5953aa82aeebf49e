// Tests of peerload's statistics: histogram merges, and the text a worker
// process sends its parent (bench/peerload/stats.h, histogram.h).
#include "bench/peerload/histogram.h"
#include "bench/peerload/stats.h"
#include "gtest/gtest.h"

namespace pcfs::peerload {
namespace {

TEST(LatencyHistogramTest, MergeGivesThePercentilesOfAllSamples) {
  // One worker saw only fast replies, the other only slow ones: the merged
  // p50 and p99 are those of the union, which no average of the two
  // workers' percentiles gives.
  LatencyHistogram fast, slow, all;
  for (int i = 0; i < 900; ++i) {
    fast.Record(1'000);
    all.Record(1'000);
  }
  for (int i = 0; i < 100; ++i) {
    slow.Record(1'000'000);
    all.Record(1'000'000);
  }
  fast.Merge(slow);
  EXPECT_EQ(fast.count(), 1000u);
  for (double q : {0.5, 0.9, 0.91, 0.99, 0.999}) {
    EXPECT_EQ(fast.Quantile(q), all.Quantile(q)) << q;
  }
  EXPECT_LT(fast.Quantile(0.9), 1'010);
  EXPECT_GT(fast.Quantile(0.91), 990'000);
}

TEST(LatencyHistogramTest, BucketsRoundTrip) {
  LatencyHistogram h;
  for (int64_t v : {0, 5, 127, 128, 4'000, 4'000, 2'000'000'000}) h.Record(v);
  LatencyHistogram copy;
  for (const auto& [bucket, count] : h.NonEmptyBuckets()) {
    ASSERT_TRUE(copy.AddToBucket(bucket, count));
  }
  EXPECT_EQ(copy.count(), h.count());
  EXPECT_EQ(copy.NonEmptyBuckets(), h.NonEmptyBuckets());
  EXPECT_FALSE(copy.AddToBucket(1u << 30, 1));
  EXPECT_EQ(copy.count(), h.count());
}

LoadStats SampleStats(int peers, int64_t latency_ns, uint64_t scale) {
  LoadStats s;
  s.peers = peers;
  s.logged_in = peers;
  s.login_s = 1.5 * scale;
  s.measured_s = 60.0 + 0.001 * scale;
  s.logins = 10 * scale;
  s.login_retries = 2 * scale;
  s.login_timeouts = scale;
  s.requests = 1000 * scale;
  s.responses = 999 * scale;
  s.heartbeat_responses = 900 * scale;
  s.mix_responses = {1 * scale, 2 * scale, 3 * scale, 4 * scale,
                     5 * scale, 6 * scale, 7 * scale};
  s.retransmissions = 7 * scale;
  s.timeouts = scale;
  s.false_expiries = 3 * scale;
  s.late_expiries = 4 * scale;
  s.logouts = peers;
  s.CountError("rate limited");
  s.CountError(absl::StrCat("kind ", scale));
  for (uint64_t i = 0; i < 999 * scale; ++i) s.latency.Record(latency_ns);
  s.login_latency.Record(latency_ns * 10);
  for (uint64_t i = 0; i < scale; ++i) s.heartbeat_latency.Record(latency_ns);
  return s;
}

TEST(LoadStatsTest, EncodeDecodeRoundTrips) {
  const LoadStats s = SampleStats(16667, 750'000, 3);
  absl::StatusOr<LoadStats> back = DecodeStats(EncodeStats(s));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(EncodeStats(*back), EncodeStats(s));
  EXPECT_EQ(back->peers, 16667);
  EXPECT_DOUBLE_EQ(back->measured_s, s.measured_s);
  EXPECT_EQ(back->login_timeouts, 3u);
  EXPECT_EQ(back->false_expiries, 9u);
  EXPECT_EQ(back->errors_by_kind, s.errors_by_kind);
  EXPECT_EQ(back->latency.Quantile(0.99), s.latency.Quantile(0.99));
  EXPECT_EQ(back->mix_responses, s.mix_responses);
  EXPECT_EQ(back->heartbeat_latency.count(), 3u);
}

TEST(LoadStatsTest, DecodeRefusesGarbage) {
  for (const char* bad : {"peers x\n", "latency 1:2 zz\n", "nonsense 1\n",
                          "mix_responses 1 2\n", "error 5\n"}) {
    EXPECT_EQ(DecodeStats(bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST(LoadStatsTest, MergeSumsCountersAndMergesHistograms) {
  const LoadStats a = SampleStats(50000, 500'000, 1);
  const LoadStats b = SampleStats(50000, 5'000'000, 2);
  LoadStats total;
  MergeStats(a, &total);
  MergeStats(b, &total);
  EXPECT_EQ(total.peers, 100000);
  EXPECT_EQ(total.logged_in, 100000);
  EXPECT_EQ(total.responses, 999u * 3);
  EXPECT_EQ(total.timeouts, 3u);
  EXPECT_EQ(total.false_expiries, 9u);
  EXPECT_EQ(total.late_expiries, 12u);
  EXPECT_EQ(total.login_timeouts, 3u);
  EXPECT_EQ(total.logouts, 100000u);
  EXPECT_EQ(total.mix_responses[4], 15u);
  EXPECT_EQ(total.errors_by_kind.at("rate limited"), 2u);
  EXPECT_EQ(total.errors(), 4u);
  // The longest of the workers' (nearly equal) windows and login phases.
  EXPECT_DOUBLE_EQ(total.measured_s, 60.002);
  EXPECT_DOUBLE_EQ(total.login_s, 3.0);
  EXPECT_EQ(total.latency.count(), 999u * 3);
  // A third of the samples are fast: the p50 is a slow one, the p30 fast.
  EXPECT_GT(total.latency.Quantile(0.5), 4'900'000);
  EXPECT_LT(total.latency.Quantile(0.3), 510'000);
  EXPECT_EQ(total.heartbeat_latency.count(), 3u);
}

TEST(LoadStatsTest, JsonGivesHeartbeatPercentilesAndAnswersByKind) {
  LoadOptions options;
  options.mix = *ParseMix("pub=1,unp=1");
  RunDescription run;
  run.options = &options;
  const std::string json =
      FormatJson(run, SampleStats(10, 2'000'000, 1), std::nullopt);
  EXPECT_NE(json.find("\"mix\":\"pub=1,unp=1\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"heartbeat_p99_us\":"), std::string::npos) << json;
  EXPECT_NE(json.find("\"mix_responses\":{\"heartbeat\":1,\"get\":2,\"sch\":3,"
                      "\"lap\":4,\"lpf\":5,\"pub\":6,\"unp\":7}"),
            std::string::npos)
      << json;
}

TEST(MixTest, ParsesPubAndUnpWeights) {
  absl::StatusOr<Mix> mix = ParseMix("unp=2,pub=3,heartbeat=1");
  ASSERT_TRUE(mix.ok()) << mix.status();
  EXPECT_EQ(mix->weights[static_cast<size_t>(RequestKind::kPublish)], 3u);
  EXPECT_EQ(mix->weights[static_cast<size_t>(RequestKind::kUnpublish)], 2u);
  EXPECT_EQ(mix->ToString(), "heartbeat=1,pub=3,unp=2");
  EXPECT_FALSE(ParseMix("publish=1").ok());
}

}  // namespace
}  // namespace pcfs::peerload
