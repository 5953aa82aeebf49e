#include "tests/integration/redis_fixture.h"

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/base/unique_fd.h"
#include "gtest/gtest.h"

namespace pcfs::testing {
namespace {

// A TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick
// of an ephemeral port, released at once). Another process may take it
// before redis-server binds it: Start() then tries another.
uint16_t FreePort() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (!fd ||
      ::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), length) != 0 ||
      ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length) !=
          0) {
    ADD_FAILURE() << "no free port: " << std::strerror(errno);
    return 0;
  }
  return ntohs(address.sin_port);
}

void Flatten(const redisReply* reply, std::vector<std::string>& out) {
  switch (reply->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
      out.emplace_back(reply->str, reply->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.push_back(absl::StrCat(reply->integer));
      break;
    case REDIS_REPLY_NIL:
      out.emplace_back("(nil)");
      break;
    case REDIS_REPLY_ERROR:
      out.push_back(
          absl::StrCat("(error) ", std::string(reply->str, reply->len)));
      break;
    case REDIS_REPLY_ARRAY:
      for (size_t i = 0; i < reply->elements; ++i) {
        Flatten(reply->element[i], out);
      }
      break;
    default:
      out.emplace_back("(unknown reply)");
  }
}

}  // namespace

RedisServer::RedisServer() : RedisServer(std::string()) {}

RedisServer::RedisServer(std::string requirepass)
    : requirepass_(std::move(requirepass)) {
  // A port another process took between FreePort() and the bind makes
  // redis-server exit: try another, a few times.
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (Start(0)) return;
  }
  ADD_FAILURE() << "redis-server did not start; its log:\n"
                << ReadFileOrEmpty(dir_.path() + "/redis.log");
}

RedisServer::~RedisServer() {
  if (process_ == nullptr) return;
  process_->Signal(SIGTERM);
  // Not answering SIGTERM in time: the Process destructor sends SIGKILL.
  (void)process_->Wait(absl::Seconds(5));
  process_.reset();
}

std::string RedisServer::address() const {
  return absl::StrCat("127.0.0.1:", port_);
}

void RedisServer::Kill() {
  if (process_ == nullptr) return;
  process_->Signal(SIGKILL);
  if (!process_->Wait(absl::Seconds(10)).has_value()) {
    ADD_FAILURE() << "redis-server did not die of SIGKILL";
  }
  process_.reset();
}

void RedisServer::Signal(int signo) {
  if (process_ != nullptr) process_->Signal(signo);
}

void RedisServer::Restart() {
  if (process_ != nullptr) {
    ADD_FAILURE() << "RedisServer::Restart() while it runs; Kill() first";
    return;
  }
  if (!Start(port_)) {
    ADD_FAILURE() << "redis-server did not restart on port " << port_
                  << "; its log:\n"
                  << ReadFileOrEmpty(dir_.path() + "/redis.log");
  }
}

bool RedisServer::Start(uint16_t port) {
  port_ = port != 0 ? port : FreePort();
  if (port_ == 0) return false;
  Process::Options options;
  options.argv = {kRedisServerPath,
                  "--port",
                  absl::StrCat(port_),
                  "--bind",
                  "127.0.0.1",
                  "--dir",
                  dir_.path(),
                  "--appendonly",
                  "yes",
                  "--appendfsync",
                  "always",
                  "--save",
                  "",
                  "--logfile",
                  "redis.log",
                  "--daemonize",
                  "no"};
  if (!requirepass_.empty()) {
    options.argv.emplace_back("--requirepass");
    options.argv.push_back(requirepass_);
  }
  options.cwd = dir_.path();
  process_ = std::make_unique<Process>(options);
  if (WaitForPong(absl::Seconds(20))) return true;
  process_->Signal(SIGKILL);
  (void)process_->Wait(absl::Seconds(10));
  process_.reset();
  return false;
}

bool RedisServer::WaitForPong(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    // Exited (its port was taken, say): no use waiting.
    if (process_->Wait(absl::ZeroDuration()).has_value()) return false;
    // PONG, not a connection: while it loads its append-only file it
    // accepts connections and answers -LOADING.
    if (std::vector<std::string> reply = Command({"PING"});
        reply == std::vector<std::string>{"PONG"}) {
      return true;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return false;
}

std::vector<std::string> RedisServer::Command(
    const std::vector<std::string>& args) const {
  timeval timeout{5, 0};
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, timeout);
  if (c == nullptr || c->err != 0) {
    std::string why = c != nullptr ? c->errstr : "out of memory";
    if (c != nullptr) redisFree(c);
    return {absl::StrCat("(unreachable) ", why)};
  }
  redisSetTimeout(c, timeout);
  if (!requirepass_.empty()) {
    auto* auth = static_cast<redisReply*>(
        redisCommand(c, "AUTH %b", requirepass_.data(), requirepass_.size()));
    if (auth == nullptr || auth->type == REDIS_REPLY_ERROR) {
      std::string why = auth != nullptr ? std::string(auth->str, auth->len)
                                        : std::string(c->errstr);
      if (auth != nullptr) freeReplyObject(auth);
      redisFree(c);
      return {absl::StrCat("(unreachable) AUTH: ", why)};
    }
    freeReplyObject(auth);
  }
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (const std::string& arg : args) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  auto* reply = static_cast<redisReply*>(redisCommandArgv(
      c, static_cast<int>(args.size()), argv.data(), lengths.data()));
  std::vector<std::string> out;
  if (reply == nullptr) {
    out.push_back(absl::StrCat("(unreachable) ", c->errstr));
  } else {
    Flatten(reply, out);
    freeReplyObject(reply);
  }
  redisFree(c);
  return out;
}

}  // namespace pcfs::testing
