// Tests peerctl/config.h: the settings file, the layers, server addresses.
#include "peerctl/config.h"

#include <cstdlib>

#include "gtest/gtest.h"

namespace pcfs {
namespace {

TEST(ParseSettingsTest, ReadsEveryKeyAndSkipsCommentsAndBlankLines) {
  absl::StatusOr<Settings> settings = ParseSettings(
      "# peerctl.conf\n\nserver = example.org:6000\nuser=hans\n"
      "password-file = ~/secret\n  share_dir = /srv/share  \n"
      "download_dir = /tmp/in\n",
      "peerctl.conf", "/home/hans");
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->server, "example.org:6000");
  EXPECT_EQ(settings->user, "hans");
  EXPECT_EQ(settings->password_file, "/home/hans/secret");
  EXPECT_EQ(settings->share_dir, "/srv/share");
  EXPECT_EQ(settings->download_dir, "/tmp/in");
}

TEST(ParseSettingsTest, ErrorsNameTheFileAndTheLine) {
  absl::StatusOr<Settings> unknown =
      ParseSettings("user = hans\nsever = x\n", "a.conf", "");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("a.conf:2: unknown setting "
                                            "'sever'"),
            absl::string_view::npos)
      << unknown.status();
  absl::StatusOr<Settings> no_equals = ParseSettings("user hans\n", "b", "");
  ASSERT_FALSE(no_equals.ok());
  EXPECT_NE(no_equals.status().message().find("b:1: expected"),
            absl::string_view::npos);
  absl::StatusOr<Settings> twice =
      ParseSettings("user = a\nuser = b\n", "c", "");
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.status().message().find("c:2: 'user' set twice"),
            absl::string_view::npos);
  absl::StatusOr<Settings> bad_port =
      ParseSettings("\nserver = host:99999\n", "d", "");
  ASSERT_FALSE(bad_port.ok());
  EXPECT_NE(bad_port.status().message().find("d:2:"), absl::string_view::npos);
}

TEST(ParseSettingsTest, ServerTakesAListAndNamesABadEntry) {
  absl::StatusOr<Settings> list =
      ParseSettings("server = a.example:1, b.example:2\n", "e", "");
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->server, "a.example:1, b.example:2");
  absl::StatusOr<Settings> twice =
      ParseSettings("server = a:1,b:2,a:1\n", "f", "");
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.status().message().find("f:1: server list"),
            absl::string_view::npos)
      << twice.status();
  EXPECT_NE(twice.status().message().find("'a:1' repeats"),
            absl::string_view::npos)
      << twice.status();
}

TEST(MergeSettingsTest, FlagsOverEnvironmentOverFile) {
  Settings flags;
  flags.user = "flag-user";
  Settings env;
  env.user = "env-user";
  env.server = "env-host";
  Settings file;
  file.user = "file-user";
  file.server = "file-host";
  file.share_dir = "/file/share";
  const Settings merged = MergeSettings(flags, MergeSettings(env, file));
  EXPECT_EQ(merged.user, "flag-user");
  EXPECT_EQ(merged.server, "env-host");
  EXPECT_EQ(merged.share_dir, "/file/share");
  EXPECT_FALSE(merged.download_dir.has_value());
}

TEST(SettingsFromEnvironmentTest, ReadsServerAndUserButNotEmptyOnes) {
  ::setenv("PEERCTL_SERVER", "envhost:7000", 1);
  ::setenv("PEERCTL_USER", "", 1);
  const Settings env = SettingsFromEnvironment();
  EXPECT_EQ(env.server, "envhost:7000");
  EXPECT_FALSE(env.user.has_value());
  ::unsetenv("PEERCTL_SERVER");
  ::unsetenv("PEERCTL_USER");
}

TEST(ParseServerAddressTest, AHostWithoutAPortMeans50000) {
  using Address = std::pair<std::string, uint16_t>;
  EXPECT_EQ(*ParseServerAddress("example.org"), Address("example.org", 50000));
  EXPECT_EQ(*ParseServerAddress("127.0.0.1"), Address("127.0.0.1", 50000));
  EXPECT_EQ(*ParseServerAddress("::1"), Address("::1", 50000));
  EXPECT_EQ(*ParseServerAddress("[::1]"), Address("::1", 50000));
  EXPECT_EQ(*ParseServerAddress("[::1]:7"), Address("::1", 7));
  EXPECT_EQ(*ParseServerAddress("host:6000"), Address("host", 6000));
  EXPECT_EQ(*ParseServerAddress("6000"), Address("localhost", 6000));
  EXPECT_FALSE(ParseServerAddress("").ok());
  EXPECT_FALSE(ParseServerAddress("host:0").ok());
  EXPECT_FALSE(ParseServerAddress("host:port").ok());
}

}  // namespace
}  // namespace pcfs
