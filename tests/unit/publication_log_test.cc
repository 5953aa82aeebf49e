// The durable publication state: what is recorded survives a reopen, a torn
// last record is ignored, and corruption anywhere else is refused.
#include "daemon/publication_log.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"

namespace pcfs {
namespace {

class PublicationLogTest : public ::testing::Test {
 protected:
  PublicationLogTest() {
    std::string pattern = "/tmp/pcfs-state-XXXXXX";
    dir_ = ::mkdtemp(pattern.data());
  }
  ~PublicationLogTest() override { std::filesystem::remove_all(dir_); }

  std::string Path(const char* name) const { return dir_ + "/" + name; }
  void Append(const char* name, const std::string& text) const {
    std::ofstream(Path(name), std::ios::app) << text;
  }
  std::string Read(const char* name) const {
    std::ifstream in(Path(name));
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  std::string dir_;
};

FileMeta Meta(uint64_t size, uint8_t fill) {
  FileMeta meta;
  meta.size = size;
  meta.sha256.fill(fill);
  return meta;
}

TEST_F(PublicationLogTest, RecordsSurviveReopening) {
  {
    Registry registry;
    auto log = PublicationLog::Open(dir_, registry);
    ASSERT_TRUE(log.ok()) << log.status();
    ASSERT_TRUE(
        (*log)->RecordPublish("hans", "BitTrickle.mp4", Meta(7, 1)).ok());
    ASSERT_TRUE(
        (*log)->RecordPublish("hans", "name with spaces.txt", Meta(9, 2)).ok());
    ASSERT_TRUE((*log)->RecordPublish("vader", "a.bin", Meta(1, 3)).ok());
    ASSERT_TRUE((*log)->RecordUnpublish("vader", "a.bin").ok());
  }
  Registry registry;
  auto log = PublicationLog::Open(dir_, registry);
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_EQ((*log)->loaded(), 2u);
  EXPECT_EQ(
      registry.PublishedBy("hans"),
      (std::vector<std::string>{"BitTrickle.mp4", "name with spaces.txt"}));
  EXPECT_TRUE(registry.PublishedBy("vader").empty());
}

TEST_F(PublicationLogTest, ABatchIsRecordedInOrderAndSurvives) {
  {
    Registry registry;
    auto log = PublicationLog::Open(dir_, registry);
    ASSERT_TRUE(log.ok()) << log.status();
    using Kind = PublicationChange::Kind;
    const std::vector<PublicationChange> batch = {
        {Kind::kPublish, "hans", "a.txt", Meta(1, 1)},
        {Kind::kPublish, "hans", "b.txt", Meta(2, 2)},
        {Kind::kUnpublish, "hans", "a.txt", {}},
        {Kind::kPublish, "vader", "c.txt", Meta(3, 3)},
    };
    ASSERT_TRUE((*log)->AppendBatch(batch).ok());
    ASSERT_TRUE((*log)->AppendBatch({}).ok());
  }
  Registry registry;
  auto log = PublicationLog::Open(dir_, registry);
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_EQ((*log)->loaded(), 2u);
  EXPECT_EQ(registry.PublishedBy("hans"), std::vector<std::string>{"b.txt"});
  EXPECT_EQ(registry.PublishedBy("vader"), std::vector<std::string>{"c.txt"});
}

TEST_F(PublicationLogTest, ABatchWithAnOverlongRecordWritesNothing) {
  Registry registry;
  auto log = PublicationLog::Open(dir_, registry);
  ASSERT_TRUE(log.ok()) << log.status();
  using Kind = PublicationChange::Kind;
  const std::vector<PublicationChange> batch = {
      {Kind::kPublish, "hans", "a.txt", Meta(1, 1)},
      {Kind::kPublish, "hans", std::string(5000, 'x'), Meta(2, 2)},
  };
  EXPECT_FALSE((*log)->AppendBatch(batch).ok());
  EXPECT_EQ(Read("publications.journal"), "");
}

TEST_F(PublicationLogTest, OpenCompactsTheJournalIntoTheSnapshot) {
  Append("publications.journal",
         "P hans 7 " + std::string(64, 'a') + " x.txt\n");
  Registry registry;
  ASSERT_TRUE(PublicationLog::Open(dir_, registry).ok());
  EXPECT_EQ(Read("publications.journal"), "");
  EXPECT_EQ(Read("publications.snapshot"),
            "P hans 7 " + std::string(64, 'a') + " x.txt\n");
}

TEST_F(PublicationLogTest, TornLastRecordIsIgnored) {
  Append("publications.journal",
         "P hans 7 " + std::string(64, 'b') + " whole.txt\nP hans 3 abc");
  Registry registry;
  ASSERT_TRUE(PublicationLog::Open(dir_, registry).ok());
  EXPECT_EQ(registry.PublishedBy("hans"),
            std::vector<std::string>{"whole.txt"});
}

TEST_F(PublicationLogTest, CorruptRecordMidFileIsRefused) {
  Append("publications.journal",
         "P hans 7 nothex x.txt\nP hans 7 " + std::string(64, 'b') + " y\n");
  Registry registry;
  auto log = PublicationLog::Open(dir_, registry);
  EXPECT_FALSE(log.ok());
  EXPECT_NE(log.status().message().find("line 1"), absl::string_view::npos);
}

TEST_F(PublicationLogTest, RecordsWithBadNamesAreRefused) {
  Registry registry;
  EXPECT_FALSE(ApplyPublicationRecord(
                   "P hans 1 " + std::string(64, 'c') + " a/b", registry)
                   .ok());
  EXPECT_FALSE(ApplyPublicationRecord("U bad!user x", registry).ok());
  EXPECT_FALSE(ApplyPublicationRecord("X hans x", registry).ok());
  EXPECT_EQ(registry.publication_count(), 0u);
}

}  // namespace
}  // namespace pcfs
