// RedisServer: a real redis-server for a test (the cluster store's tests,
// and the end-to-end tests of peerconnectd --redis). It runs as a child
// process on 127.0.0.1, on a free port, in a fresh temporary folder, with
// its durability as docs/OPERATIONS.md asks (--appendonly yes
// --appendfsync always, no RDB snapshots: --save ""). Its log goes to
// redis.log in that folder (folder()), not to a pipe that could fill.
//
//   RedisServer redis;                       // up and answering PING
//   Daemon a("...", {"--redis=" + redis.address()});
//   redis.Kill();                            // SIGKILL: a crash
//   redis.Restart();                         // same port and folder: the
//                                            // append-only file reloads
//
// Every wait is bounded; a server that does not answer is a test failure
// (ADD_FAILURE), never a hang. Not thread-safe: one test thread drives it.
#ifndef PCFS_TESTS_INTEGRATION_REDIS_FIXTURE_H_
#define PCFS_TESTS_INTEGRATION_REDIS_FIXTURE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tests/integration/harness.h"

namespace pcfs::testing {

// Debian's redis-server (packaging/install-deps.sh installs it).
inline constexpr char kRedisServerPath[] = "/usr/bin/redis-server";

class RedisServer {
 public:
  // Starts the server and waits (at most 20 s) until PING answers PONG.
  RedisServer();
  // The same, with `requirepass` set (the default user's password), which
  // Command() and the wait for PONG log in with.
  explicit RedisServer(std::string requirepass);
  // Stops it (SIGTERM, then SIGKILL after 5 s) and removes its folder.
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  uint16_t port() const { return port_; }
  std::string address() const;  // "127.0.0.1:PORT"
  const std::string& folder() const { return dir_.path(); }
  bool running() const { return process_ != nullptr; }

  // SIGKILL, and waits for the exit: a crash or a power cut. What it
  // acknowledged is in its append-only file (appendfsync always).
  void Kill();
  // Starts it again on the same port and folder (after Kill()), so that it
  // reloads its append-only file, and waits until PING answers PONG.
  void Restart();
  // Sends a signal: SIGSTOP and SIGCONT make it stall and go on (a server
  // that accepted a command and does not answer in time).
  void Signal(int signo);

  // Runs one command on a fresh connection and returns the reply as text,
  // flattened: a string, status or integer is one element, an array its
  // elements in order (nested ones flattened), nil "(nil)", an error
  // "(error) MESSAGE". An unreachable server gives {"(unreachable) WHY"}.
  // For tests to look at (or change) the stored state directly. Logs in
  // first (AUTH) when the server has a requirepass.
  std::vector<std::string> Command(const std::vector<std::string>& args) const;

 private:
  // Starts redis-server on `port` (0: a free one, tried a few times);
  // false if it did not answer PONG.
  bool Start(uint16_t port);
  bool WaitForPong(absl::Duration timeout);

  TempDir dir_;
  std::string requirepass_;
  uint16_t port_ = 0;
  std::unique_ptr<Process> process_;
};

}  // namespace pcfs::testing

#endif  // PCFS_TESTS_INTEGRATION_REDIS_FIXTURE_H_
