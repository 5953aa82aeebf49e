// Tests peerctl/control.h's line format: requests and replies round-trip,
// and nothing a caller passes can break the framing.
#include "peerctl/control.h"

#include "gtest/gtest.h"
#include "peerctl/exit_codes.h"

namespace pcfs::control {
namespace {

TEST(ControlRequestTest, RoundTrips) {
  Request get{"get", "my file.mp4", "/home/hans/in"};
  absl::StatusOr<std::string> line = EncodeRequest(get);
  ASSERT_TRUE(line.ok());
  EXPECT_EQ(*line, "get\tmy file.mp4\t/home/hans/in\n");
  absl::StatusOr<Request> parsed =
      ParseRequest(absl::string_view(*line).substr(0, line->size() - 1));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->command, "get");
  EXPECT_EQ(parsed->argument, "my file.mp4");
  EXPECT_EQ(parsed->download_dir, "/home/hans/in");
  EXPECT_EQ(*EncodeRequest({"lap", "", ""}), "lap\n");
  EXPECT_EQ(*EncodeRequest({"sch", "", ""}), "sch\t\n");
  EXPECT_TRUE(ParseRequest("sch\t").ok());
}

TEST(ControlRequestTest, RefusesWhatWouldBreakTheFraming) {
  EXPECT_FALSE(EncodeRequest({"pub", "a\nb", ""}).ok());
  EXPECT_FALSE(EncodeRequest({"pub", "a\tb", ""}).ok());
  EXPECT_FALSE(ParseRequest("bogus").ok());
  EXPECT_FALSE(ParseRequest("lap\textra").ok());
  EXPECT_FALSE(ParseRequest("pub").ok());
  EXPECT_FALSE(ParseRequest("pub\ta\tb").ok());
}

TEST(ControlReplyTest, ItemsOkAndErrorsRoundTrip) {
  absl::StatusOr<ReplyLine> item = ParseReplyLine("item\tBitTrickle.mp4");
  ASSERT_TRUE(item.ok());
  EXPECT_EQ(item->kind, ReplyLine::Kind::kItem);
  EXPECT_EQ(item->text, "BitTrickle.mp4");
  EXPECT_EQ(EncodeItem("a\nb"), "item\ta b\n");
  EXPECT_EQ(ParseReplyLine("ok")->kind, ReplyLine::Kind::kOk);

  const std::string error = EncodeError(absl::NotFoundError("File not found"));
  EXPECT_EQ(error, "error\tNOT_FOUND\tnot-found\tFile not found\n");
  absl::StatusOr<ReplyLine> parsed =
      ParseReplyLine(absl::string_view(error).substr(0, error.size() - 1));
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->status, absl::NotFoundError("File not found"));
}

TEST(ControlReplyTest, AHolderFailureKeepsItsExitCode) {
  const std::string line = EncodeError(
      MarkHolderFailure(absl::UnavailableError("connection refused")));
  absl::StatusOr<ReplyLine> parsed =
      ParseReplyLine(absl::string_view(line).substr(0, line.size() - 1));
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(ExitCodeFor(parsed->status), kExitHolderUnreachable);
  EXPECT_EQ(ExitCodeFor(absl::UnavailableError("daemon")), kExitUnreachable);
}

// A holder that refuses (HTTP 401 to the ticket, 400) is a failure (1),
// not the user's login refused (3) or a usage error (2): directly, and
// through the agent.
TEST(ControlReplyTest, AHolderRefusalIsAFailure) {
  for (const absl::Status& refusal :
       {absl::UnauthenticatedError("holder refused the ticket"),
        absl::InvalidArgumentError("holder answered 400")}) {
    const absl::Status marked = MarkHolderFailure(refusal);
    EXPECT_EQ(ExitCodeFor(marked), kExitFailure) << refusal;
    const std::string line = EncodeError(marked);
    absl::StatusOr<ReplyLine> parsed =
        ParseReplyLine(absl::string_view(line).substr(0, line.size() - 1));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(ExitCodeFor(parsed->status), kExitFailure) << line;
    EXPECT_EQ(parsed->status.code(), refusal.code());
  }
  EXPECT_EQ(ExitCodeFor(absl::UnauthenticatedError("wrong password")),
            kExitLoginRefused);
  EXPECT_EQ(ExitCodeFor(absl::InvalidArgumentError("bad name")), kExitUsage);
}

// A failure in the download folder is a failure (1) whatever its errno
// says (ENOENT would read as not found, EINVAL as a usage error, EAGAIN as
// the daemon unreachable): directly, and through the agent.
TEST(ControlReplyTest, AFolderFailureIsAFailure) {
  for (const absl::Status& error :
       {absl::NotFoundError("renameat2: No such file or directory"),
        absl::InvalidArgumentError("fallocate: Invalid argument"),
        absl::UnavailableError("flock: Resource temporarily unavailable")}) {
    const absl::Status marked = MarkFolderFailure(error);
    EXPECT_EQ(ExitCodeFor(marked), kExitFailure) << error;
    const std::string line = EncodeError(marked);
    absl::StatusOr<ReplyLine> parsed =
        ParseReplyLine(absl::string_view(line).substr(0, line.size() - 1));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(ExitCodeFor(parsed->status), kExitFailure) << line;
    EXPECT_EQ(parsed->status.code(), error.code());
  }
}

TEST(ControlReplyTest, RefusesMalformedLines) {
  EXPECT_FALSE(ParseReplyLine("").ok());
  EXPECT_FALSE(ParseReplyLine("error\tNOT_A_CODE\tx\ty").ok());
  EXPECT_FALSE(ParseReplyLine("error\tOK\tok\tfine").ok());
  EXPECT_FALSE(ParseReplyLine("error\tNOT_FOUND").ok());
}

}  // namespace
}  // namespace pcfs::control
