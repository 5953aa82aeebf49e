// core/base/cli: flag files read by us, so that their flags may be spelled
// with dashes as on the command line (peerconnectd.service passes
// --flagfile=/etc/peerconnect/peerconnectd.flags), and a bad one is a usage
// error naming the file.
#include "core/base/cli.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

ABSL_FLAG(std::string, cli_test_dir, "", "a flag with an underscore");
ABSL_FLAG(int, cli_test_count, 0, "another");

namespace pcfs {
namespace {

using Args = std::vector<std::string>;

// Flag files in the test's temporary folder, removed when it goes.
class Flagfiles {
 public:
  Flagfiles() = default;
  Flagfiles(const Flagfiles&) = delete;
  Flagfiles& operator=(const Flagfiles&) = delete;
  ~Flagfiles() {
    for (const std::string& path : paths_) std::remove(path.c_str());
  }

  // Where the file called `name` is written.
  static std::string Path(const std::string& name) {
    return absl::StrCat(::testing::TempDir(), "/cli_test_", ::getpid(), "_",
                        name);
  }

  // Writes the file called `name` holding `text`; its path.
  std::string Write(const std::string& name, const std::string& text) {
    paths_.push_back(Path(name));
    std::ofstream(paths_.back()) << text;
    return paths_.back();
  }

 private:
  std::vector<std::string> paths_;
};

TEST(ParseFlagfileTest, ReadsOneFlagALineAsAbslDoes) {
  absl::StatusOr<Args> flags = ParseFlagfile(
      "# a comment\n\n  --port=50000  \n--bind=::\r\n\t# indented comment\n"
      "-verbose\n--credentials=/etc/a b.txt",
      "x.flags");
  ASSERT_TRUE(flags.ok()) << flags.status();
  EXPECT_EQ(*flags, (Args{"--port=50000", "--bind=::", "-verbose",
                          "--credentials=/etc/a b.txt"}));
  EXPECT_EQ(*ParseFlagfile("", "empty.flags"), Args{});
}

TEST(ParseFlagfileTest, ALineThatIsNoFlagIsRefusedWithFileAndLine) {
  for (const char* line : {"port=50000", "-", "--", "50000"}) {
    absl::StatusOr<Args> flags =
        ParseFlagfile(absl::StrCat("--bind=::\n", line, "\n"), "/etc/x.flags");
    ASSERT_FALSE(flags.ok()) << line;
    EXPECT_EQ(flags.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StartsWith(flags.status().message(), "/etc/x.flags:2: "))
        << flags.status();
  }
}

TEST(ExpandFlagfilesTest, AFilesFlagsTakeItsPlaceInEveryForm) {
  Flagfiles files;
  const std::string inner = files.Write("inner", "--cli-test-count=3\n");
  const std::string outer = files.Write(
      "outer", absl::StrCat("--cli-test-dir=/a\n--flagfile=", inner, "\n"));
  absl::StatusOr<Args> args = ExpandFlagfiles(
      {"prog", "--verbose", "--flagfile=" + outer, "-flagfile", inner,
       "--flagfile", inner, "pos", "--", "--flagfile=" + outer});
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_EQ(*args,
            (Args{"prog", "--verbose", "--cli-test-dir=/a",
                  "--cli-test-count=3", "--cli-test-count=3",
                  "--cli-test-count=3", "pos", "--", "--flagfile=" + outer}));
  // Several files in one flag, as absl reads it.
  args =
      ExpandFlagfiles({"prog", absl::StrCat("--flagfile=", inner, ",", outer)});
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_EQ(*args, (Args{"prog", "--cli-test-count=3", "--cli-test-dir=/a",
                         "--cli-test-count=3"}));
}

TEST(ExpandFlagfilesTest, AMissingFileALoopAndAMissingPathAreRefused) {
  absl::StatusOr<Args> args =
      ExpandFlagfiles({"prog", "--flagfile=/no/such/file.flags"});
  ASSERT_FALSE(args.ok());
  EXPECT_EQ(args.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(args.status().message(), "--flagfile: "));
  EXPECT_TRUE(
      absl::StrContains(args.status().message(), "/no/such/file.flags"));

  Flagfiles files;
  const std::string path = files.Path("loop");
  files.Write("loop", absl::StrCat("--flagfile=", path, "\n"));
  args = ExpandFlagfiles({"prog", "--flagfile=" + path});
  ASSERT_FALSE(args.ok());
  EXPECT_TRUE(absl::StrContains(args.status().message(), "(a loop?)"))
      << args.status();

  args = ExpandFlagfiles({"prog", "--flagfile"});
  ASSERT_FALSE(args.ok());
  EXPECT_EQ(args.status().message(), "--flagfile needs a file");

  const std::string bad = files.Write("bad", "--bind=::\nverbose\n");
  args = ExpandFlagfiles({"prog", "--flagfile=" + bad});
  ASSERT_FALSE(args.ok());
  EXPECT_TRUE(absl::StartsWith(args.status().message(), bad + ":2: "))
      << args.status();
}

// The bug this fixes: absl read the file itself, so "--cli-test-dir" there
// was an unknown flag (absl's own exit 1), though the same spelling works
// on the command line.
TEST(ParseCommandLineStrictlyTest, AFlagfilesFlagsMaySpellNamesWithDashes) {
  Flagfiles files;
  const std::string file =
      files.Write("dashes", "# as a user writes it\n--cli-test-dir=/srv\n");
  std::vector<std::string> argv_text = {"prog", "--flagfile=" + file,
                                        "--cli-test-count=7", "positional"};
  std::vector<char*> argv;
  for (std::string& arg : argv_text) argv.push_back(arg.data());
  absl::StatusOr<Args> rest =
      ParseCommandLineStrictly(static_cast<int>(argv.size()), argv.data());
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(*rest, Args{"positional"});
  EXPECT_EQ(absl::GetFlag(FLAGS_cli_test_dir), "/srv");
  EXPECT_EQ(absl::GetFlag(FLAGS_cli_test_count), 7);
}

TEST(ParseCommandLineStrictlyTest, AnUnknownFlagNamesTheFileItIsIn) {
  Flagfiles files;
  const std::string file = files.Write("unknown", "--cli-test-bogus=1\n");
  std::vector<std::string> argv_text = {"prog", "--flagfile=" + file};
  std::vector<char*> argv;
  for (std::string& arg : argv_text) argv.push_back(arg.data());
  absl::StatusOr<Args> rest =
      ParseCommandLineStrictly(static_cast<int>(argv.size()), argv.data());
  ASSERT_FALSE(rest.ok());
  EXPECT_EQ(rest.status().message(),
            absl::StrCat("unknown flag --cli-test-bogus=1 (in ", file, ")"));

  argv_text = {"prog", "--cli-test-bogus"};
  argv = {argv_text[0].data(), argv_text[1].data()};
  rest = ParseCommandLineStrictly(2, argv.data());
  ASSERT_FALSE(rest.ok());
  EXPECT_EQ(rest.status().message(), "unknown flag --cli-test-bogus");
}

}  // namespace
}  // namespace pcfs
