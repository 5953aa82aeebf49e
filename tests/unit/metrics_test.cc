#include "daemon/metrics.h"

#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

TEST(LatencyHistogramTest, BucketsAreCumulativeWithSumAndCount) {
  LatencyHistogram h;
  h.Observe(5'000);          // 5 us: the first bucket (10 us)
  h.Observe(200'000);        // 200 us: the 250 us bucket
  h.Observe(3'000'000'000);  // 3 s: only +Inf
  std::string out;
  h.Render("x_seconds", "", out);
  EXPECT_TRUE(absl::StrContains(out, "x_seconds_bucket{le=\"1e-05\"} 1\n"))
      << out;
  EXPECT_TRUE(absl::StrContains(out, "x_seconds_bucket{le=\"0.0001\"} 1\n"));
  EXPECT_TRUE(absl::StrContains(out, "x_seconds_bucket{le=\"0.00025\"} 2\n"));
  EXPECT_TRUE(absl::StrContains(out, "x_seconds_bucket{le=\"1\"} 2\n"));
  EXPECT_TRUE(absl::StrContains(out, "x_seconds_bucket{le=\"+Inf\"} 3\n"));
  EXPECT_TRUE(absl::StrContains(out, "x_seconds_count 3\n"));
  EXPECT_TRUE(absl::StrContains(out, "x_seconds_sum 3.000205000\n"));
}

TEST(LatencyHistogramTest, LabelsGoInsideEveryBraceAndMergeAdds) {
  LatencyHistogram a;
  LatencyHistogram b;
  a.Observe(1'000);
  b.Observe(1'000);
  a.MergeFrom(b);
  std::string out;
  a.Render("y", "type=\"PUB\"", out);
  EXPECT_TRUE(absl::StrContains(out, "y_bucket{type=\"PUB\",le=\"+Inf\"} 2\n"))
      << out;
  EXPECT_TRUE(absl::StrContains(out, "y_count{type=\"PUB\"} 2\n"));
}

TEST(RequestMetricsTest, CountsRequestsAndRepliesByTypeAndResult) {
  RequestMetrics m;
  m.Record(0x12, true, 0);    // PUB ok
  m.Record(0x12, true, 7);    // PUB invalid_name
  m.Record(0x05, false, 0);   // PING dropped
  m.Record(0x77, true, 11);   // unknown type
  m.Record(0x01, true, 255);  // LOGIN internal
  const size_t pub = RequestMetrics::TypeIndex(0x12);
  EXPECT_EQ(RequestMetrics::TypeLabel(pub), "PUB");
  EXPECT_EQ(m.requests[pub].Get(), 2u);
  EXPECT_EQ(m.replies[pub][0].Get(), 1u);
  EXPECT_EQ(m.replies[pub][7].Get(), 1u);
  EXPECT_EQ(RequestMetrics::ResultLabel(7), "invalid_name");
  const size_t ping = RequestMetrics::TypeIndex(0x05);
  EXPECT_EQ(RequestMetrics::TypeLabel(ping), "PING");
  EXPECT_EQ(m.replies[ping][RequestMetrics::kResults - 1].Get(), 1u);
  EXPECT_EQ(RequestMetrics::TypeLabel(RequestMetrics::TypeIndex(0x16)), "STAT");
  EXPECT_EQ(RequestMetrics::TypeLabel(RequestMetrics::TypeIndex(0x77)),
            "UNKNOWN");
  EXPECT_EQ(RequestMetrics::ResultLabel(RequestMetrics::ResultIndex(255)),
            "internal");
}

TEST(ParseMetricsAddressTest, WantsANumericAddressAndAPort) {
  EXPECT_TRUE(ParseMetricsAddress("127.0.0.1:9650").ok());
  EXPECT_TRUE(ParseMetricsAddress("[::1]:9650").ok());
  EXPECT_FALSE(ParseMetricsAddress("9650").ok());
  EXPECT_FALSE(ParseMetricsAddress("127.0.0.1").ok());
  EXPECT_FALSE(ParseMetricsAddress("localhost:9650").ok());
  EXPECT_FALSE(ParseMetricsAddress("127.0.0.1:99999").ok());
}

}  // namespace
}  // namespace pcfs
