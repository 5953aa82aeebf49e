// LoadOptions: what one peerload run does (which server, how many simulated
// peers, the request mix and rate, how long), and the parser of the --mix
// text. Plain data; the command line in main.cc fills it.
//
// Thread-safety: plain values; no shared state.
#ifndef PCFS_BENCH_PEERLOAD_OPTIONS_H_
#define PCFS_BENCH_PEERLOAD_OPTIONS_H_

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace pcfs::peerload {

// The kinds of request a peer sends on top of its mandatory heartbeats.
enum class RequestKind : uint8_t {
  kHeartbeat = 0,  // an extra HEARTBEAT
  kGet,            // GET of a published name
  kSearch,         // SCH of a 3- or 5-character piece of a published name
  kListActive,     // LAP, first page
  kListPublished,  // LPF, first page
  kPublish,        // PUB of a name of the peer's own (a new one each time)
  kUnpublish,      // UNP of the oldest own name the peer still publishes
};
inline constexpr int kRequestKinds = 7;

// The --mix names of the kinds: "heartbeat", "get", "sch", "lap", "lpf",
// "pub", "unp". An "unp" drawn while the peer publishes none of its own
// names is sent as a "pub" (and counted as one).
absl::string_view RequestKindName(RequestKind kind);

// Relative weights of the request kinds. All zero ("none"): the peers send
// only their mandatory heartbeats.
struct Mix {
  std::array<uint32_t, kRequestKinds> weights{};

  uint32_t total() const;
  bool empty() const { return total() == 0; }
  // "heartbeat=1,get=2" (kinds of weight 0 left out), or "none".
  std::string ToString() const;
};

// Parses "heartbeat=1,get=2,sch=1,lap=0,lpf=0,pub=1,unp=1" (any subset, any
// order; kinds not named weigh 0) or "none". Weights are integers 0..1000000.
// Errors: InvalidArgument naming the bad part.
absl::StatusOr<Mix> ParseMix(absl::string_view text);

struct LoadOptions {
  std::string host = "localhost";
  uint16_t port = 50000;
  // Against udp_echo instead of the daemon: no login, every request a
  // heartbeat-sized datagram, sealed as a session's would be, echoed back
  // and opened (peer.h, EncodeEcho).
  bool raw = false;

  int peers = 100;
  // The measurement window; it opens once every peer has logged in (and the
  // publishers have published), or when `ramp` has passed.
  absl::Duration duration = absl::Seconds(10);
  absl::Duration ramp = absl::Seconds(120);
  // Initial logins started per second (re-logins after an expiry are not
  // held back).
  double login_rate = 2000;
  // Logouts sent per second at the end.
  double logout_rate = 20000;

  Mix mix;
  // Mix requests per second over all peers, spread evenly (open loop); 0:
  // each peer sends its next one as soon as the previous reply arrives
  // (closed loop).
  double rate = 0;

  // The first `publishers` peers publish `names_per_publisher` names each
  // after they log in, so that GET and SCH find something.
  int publishers = 100;
  int names_per_publisher = 3;

  // Raw mode's stand-in for the heartbeat interval the daemon announces.
  absl::Duration raw_heartbeat_interval = absl::Seconds(2);

  // Against an IPv4 loopback server, bind the peers to distinct loopback
  // source addresses (127.1.0.1, 127.1.0.2, ...), `peers_per_source` per
  // address: the daemon limits LOGINs per source address, and one address
  // has fewer than 30,000 ephemeral ports.
  bool spread_sources = true;
  int peers_per_source = 100;
  // The run-wide index of this driver's first peer, for its source
  // address: a worker process (workers.h) drives peers
  // first_peer_index.. of the run, so the workers' peers never share an
  // address beyond the --peers_per_source of one.
  uint64_t first_peer_index = 0;

  // Retransmission, as peerctl's client does it: 200 ms, doubling, 5 tries.
  absl::Duration first_timeout = absl::Milliseconds(200);
  int attempts = 5;
  // How long to wait for the last LOGOUT replies.
  absl::Duration logout_grace = absl::Seconds(7);
};

}  // namespace pcfs::peerload

#endif  // PCFS_BENCH_PEERLOAD_OPTIONS_H_
