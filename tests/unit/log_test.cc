#include "core/base/log.h"

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

absl::Time Sample(absl::TimeZone zone) {
  return absl::FromCivil(absl::CivilSecond(2026, 12, 2, 9, 11, 23), zone) +
         absl::Milliseconds(445);
}

TEST(FormatLogLineTest, JournalLinesCarryTheSyslogPriorityAndNoTime) {
  const absl::TimeZone utc = absl::UTCTimeZone();
  EXPECT_EQ(
      FormatLogLine(LogPriority::kError, "disk full", true, Sample(utc), utc),
      "<3>disk full");
  EXPECT_EQ(FormatLogLine(LogPriority::kWarning, "w", true, Sample(utc), utc),
            "<4>w");
  EXPECT_EQ(FormatLogLine(LogPriority::kInfo, "i", true, Sample(utc), utc),
            "<6>i");
  EXPECT_EQ(FormatLogLine(LogPriority::kDebug, "d", true, Sample(utc), utc),
            "<7>d");
}

TEST(FormatLogLineTest, OtherLinesCarryAnIso8601TimeWithItsZone) {
  const absl::TimeZone plus_one = absl::FixedTimeZone(3600);
  EXPECT_EQ(FormatLogLine(LogPriority::kInfo, "login: hans", false,
                          Sample(plus_one), plus_one),
            "2026-12-02T09:11:23.445+01:00 login: hans");
  EXPECT_EQ(FormatLogLine(LogPriority::kError, "bad", false, Sample(plus_one),
                          plus_one),
            "2026-12-02T09:11:23.445+01:00 error: bad");
  EXPECT_EQ(FormatLogLine(LogPriority::kWarning, "hmm", false, Sample(plus_one),
                          plus_one),
            "2026-12-02T09:11:23.445+01:00 warning: hmm");
}

}  // namespace
}  // namespace pcfs
