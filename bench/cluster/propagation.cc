// cluster_propagation: how long a publication made through one daemon of a
// cluster (peerconnectd --redis) takes to be found through the others. The
// target of docs/SCALING.md: p99 under 1 s.
//
//   cluster_propagation --servers A_HOST:PORT,B_HOST:PORT[,...]
//                       --password PASSWORD [--count N] [--json]
//
// User "prop0" logs in on the first daemon and publishes N names, one after
// another; users "prop1", "prop2", ... log in on the others, one each (the
// credentials file must hold them all with PASSWORD). After each `pub` is
// acknowledged, every reader asks its daemon `sch NAME` until the name is
// there (every 200 µs, at most 5 s): the time from the acknowledgement to
// the first answer that holds it is that reader's propagation time. The
// name is then taken back (`unp`) so that the index stays small. Prints
// each reader's p50, p99 and maximum, or one JSON object with --json.
// Exits 1 when a name is not seen within 5 s.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/base/cli.h"
#include "core/io/net.h"
#include "peerctl/client.h"

ABSL_FLAG(std::string, servers, "",
          "the daemons, comma-separated: the first takes the pubs");
ABSL_FLAG(std::string, password, "", "every prop user's password");
ABSL_FLAG(int, count, 300, "publications to time");
ABSL_FLAG(bool, json, false, "print one JSON object");

namespace {

struct Reader {
  std::string server;
  std::unique_ptr<pcfs::ControlClient> client;
  std::vector<double> ms;
};

double Quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * v.size()));
  return v[i];
}

absl::StatusOr<std::unique_ptr<pcfs::ControlClient>> LogIn(
    const std::string& server, const std::string& user,
    const std::string& password) {
  absl::StatusOr<std::pair<std::string, uint16_t>> hp =
      pcfs::ParseHostPort(server);
  if (!hp.ok()) return hp.status();
  pcfs::ControlClient::Options options;
  options.host = hp->first;
  options.port = hp->second;
  options.notify = [](absl::string_view) {};
  absl::StatusOr<std::unique_ptr<pcfs::ControlClient>> client =
      pcfs::ControlClient::Connect(options);
  if (!client.ok()) return client.status();
  if (absl::Status s = (*client)->Login(user, password, 0); !s.ok()) {
    return absl::Status(s.code(),
                        absl::StrCat(user, " on ", server, ": ", s.message()));
  }
  return client;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "cluster_propagation --servers A,B[,...] --password P [--count N]");
  pcfs::ParseCommandLineOrExit(argc, argv);
  const std::vector<std::string> servers =
      absl::StrSplit(absl::GetFlag(FLAGS_servers), ',', absl::SkipEmpty());
  const std::string password = absl::GetFlag(FLAGS_password);
  const int count = absl::GetFlag(FLAGS_count);
  if (servers.size() < 2 || password.empty() || count < 1) {
    std::fprintf(stderr,
                 "cluster_propagation: need --servers with two daemons or "
                 "more, --password and a positive --count\n");
    return 2;
  }
  absl::StatusOr<std::unique_ptr<pcfs::ControlClient>> writer =
      LogIn(servers[0], "prop0", password);
  if (!writer.ok()) {
    std::fprintf(stderr, "cluster_propagation: %s\n",
                 writer.status().ToString().c_str());
    return 1;
  }
  std::vector<Reader> readers;
  for (size_t i = 1; i < servers.size(); ++i) {
    absl::StatusOr<std::unique_ptr<pcfs::ControlClient>> c =
        LogIn(servers[i], absl::StrCat("prop", i), password);
    if (!c.ok()) {
      std::fprintf(stderr, "cluster_propagation: %s\n",
                   c.status().ToString().c_str());
      return 1;
    }
    readers.push_back({servers[i], *std::move(c), {}});
  }
  const std::string run =
      absl::StrCat(getpid(), "-", absl::ToUnixMillis(absl::Now()));
  pcfs::Sha256Digest root{};
  int missed = 0;
  for (int n = 0; n < count; ++n) {
    const std::string name = absl::StrCat("prop-", run, "-", n, ".bin");
    root[0] = static_cast<uint8_t>(n);
    if (absl::Status s = (*writer)->Publish(name, 1, root); !s.ok()) {
      std::fprintf(stderr, "cluster_propagation: pub %s: %s\n", name.c_str(),
                   s.ToString().c_str());
      return 1;
    }
    const absl::Time acked = absl::Now();
    for (Reader& r : readers) {
      const absl::Time give_up = acked + absl::Seconds(5);
      bool seen = false;
      while (!seen && absl::Now() < give_up) {
        absl::StatusOr<std::vector<std::string>> found = r.client->Search(name);
        if (found.ok() &&
            std::find(found->begin(), found->end(), name) != found->end()) {
          seen = true;
          r.ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - acked));
        } else {
          absl::SleepFor(absl::Microseconds(200));
        }
      }
      if (!seen) ++missed;
    }
    if (absl::Status s = (*writer)->Unpublish(name); !s.ok()) {
      std::fprintf(stderr, "cluster_propagation: unp %s: %s\n", name.c_str(),
                   s.ToString().c_str());
      return 1;
    }
  }
  if (absl::GetFlag(FLAGS_json)) {
    std::string out = absl::StrCat(
        "{\"count\": ", count, ", \"missed\": ", missed, ", \"readers\": [");
    for (size_t i = 0; i < readers.size(); ++i) {
      const Reader& r = readers[i];
      absl::StrAppend(&out, i ? ", " : "", "{\"server\": \"", r.server,
                      "\", \"seen\": ", r.ms.size(),
                      ", \"p50_ms\": ", Quantile(r.ms, 0.50),
                      ", \"p99_ms\": ", Quantile(r.ms, 0.99),
                      ", \"max_ms\": ", Quantile(r.ms, 1.0), "}");
    }
    std::printf("%s]}\n", out.c_str());
  } else {
    for (const Reader& r : readers) {
      std::printf("%s: %zu of %d seen; p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
                  r.server.c_str(), r.ms.size(), count, Quantile(r.ms, 0.50),
                  Quantile(r.ms, 0.99), Quantile(r.ms, 1.0));
    }
  }
  (*writer)->Logout().IgnoreError();
  for (Reader& r : readers) r.client->Logout().IgnoreError();
  return missed == 0 ? 0 : 1;
}
