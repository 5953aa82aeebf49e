// core/base/cli: flag files read by us, so that their flags may be spelled
// with dashes as on the command line (peerconnectd.service passes
// --flagfile=/etc/peerconnect/peerconnectd.flags), and a bad one is a usage
// error naming the file.
#include "core/base/cli.h"

#include <stdlib.h>
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
ABSL_FLAG(bool, cli_test_switch, false, "a yes-or-no flag");

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

// ParseCommandLineStrictly of `argv_text` (argv[0] first).
absl::StatusOr<Args> Parse(std::vector<std::string> argv_text) {
  std::vector<char*> argv;
  for (std::string& arg : argv_text) argv.push_back(arg.data());
  return ParseCommandLineStrictly(static_cast<int>(argv.size()), argv.data());
}

// The message of Parse's error for `argv_text`, or "(parsed)".
std::string ErrorOf(std::vector<std::string> argv_text) {
  absl::StatusOr<Args> rest = Parse(std::move(argv_text));
  return rest.ok() ? "(parsed)" : std::string(rest.status().message());
}

// absl's parser prints its own message and exits 1 on a value it cannot
// read; these are usage errors, naming the flag as the user spelt it.
TEST(ParseCommandLineStrictlyTest, ABadOrMissingValueNamesTheFlag) {
  absl::StatusOr<Args> rest = Parse({"prog", "--cli-test-count=abc"});
  ASSERT_FALSE(rest.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(rest.status()));
  EXPECT_EQ(rest.status().message(),
            "invalid value 'abc' for --cli-test-count");

  EXPECT_EQ(ErrorOf({"prog", "positional", "--cli_test_count"}),
            "--cli_test_count needs a value");

  Flagfiles files;
  const std::string file = files.Write("bad-value", "--cli-test-count=1x\n");
  EXPECT_EQ(
      ErrorOf({"prog", "--flagfile=" + file}),
      absl::StrCat("invalid value '1x' for --cli-test-count (in ", file, ")"));

  // A value in the next argument, as absl takes it.
  rest = Parse({"prog", "--cli-test-count", "12", "positional"});
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(*rest, Args{"positional"});
  EXPECT_EQ(absl::GetFlag(FLAGS_cli_test_count), 12);
}

TEST(ParseCommandLineStrictlyTest, AYesOrNoFlagTakesItsFormsOnly) {
  absl::StatusOr<Args> rest = Parse({"prog", "--cli-test-switch"});
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_TRUE(absl::GetFlag(FLAGS_cli_test_switch));
  rest = Parse({"prog", "--nocli_test_switch", "positional"});
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(*rest, Args{"positional"});  // not taken as a value
  EXPECT_FALSE(absl::GetFlag(FLAGS_cli_test_switch));
  rest = Parse({"prog", "--cli-test-switch=true"});
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_TRUE(absl::GetFlag(FLAGS_cli_test_switch));

  EXPECT_EQ(ErrorOf({"prog", "--cli-test-switch=maybe"}),
            "invalid value 'maybe' for --cli-test-switch");
  EXPECT_EQ(ErrorOf({"prog", "--nocli_test_switch=1"}),
            "--nocli_test_switch takes no value");
  EXPECT_EQ(ErrorOf({"prog", "--nocli_test_count"}),
            "unknown flag --nocli_test_count (--cli_test_count is not a "
            "yes-or-no flag)");
}

// Sets an environment variable for the life of the object.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    ::setenv(name, value, 1);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv() { ::unsetenv(name_); }

 private:
  const char* name_;
};

// --fromenv and --tryfromenv were absl's alone: a variable missing or a
// bad value exited 1 with absl's message.
TEST(ParseCommandLineStrictlyTest, FlagsFromTheEnvironmentGetTheSameChecks) {
  ::unsetenv("FLAGS_cli_test_dir");
  ScopedEnv count("FLAGS_cli_test_count", "42");
  absl::StatusOr<Args> rest =
      Parse({"prog", "--fromenv=cli-test-count", "positional"});
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(*rest, Args{"positional"});
  EXPECT_EQ(absl::GetFlag(FLAGS_cli_test_count), 42);

  EXPECT_EQ(ErrorOf({"prog", "--fromenv", "cli_test_count,cli_test_dir"}),
            "--fromenv: FLAGS_cli_test_dir is not set in the environment");

  absl::SetFlag(&FLAGS_cli_test_dir, "unchanged");
  absl::SetFlag(&FLAGS_cli_test_count, 0);
  rest = Parse({"prog", "--tryfromenv=cli_test_dir,cli_test_count"});
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(absl::GetFlag(FLAGS_cli_test_dir), "unchanged");
  EXPECT_EQ(absl::GetFlag(FLAGS_cli_test_count), 42);

  {
    ScopedEnv bad("FLAGS_cli_test_count", "many");
    EXPECT_EQ(ErrorOf({"prog", "--tryfromenv=cli_test_count"}),
              "invalid value 'many' for --cli_test_count (from "
              "FLAGS_cli_test_count)");
  }
  ScopedEnv unknown("FLAGS_cli_test_bogus", "1");
  EXPECT_EQ(ErrorOf({"prog", "--fromenv=cli_test_bogus"}),
            "unknown flag --cli_test_bogus=1 (from FLAGS_cli_test_bogus)");
  EXPECT_EQ(ErrorOf({"prog", "--fromenv"}),
            "--fromenv needs a list of flag names");
}

}  // namespace
}  // namespace pcfs
