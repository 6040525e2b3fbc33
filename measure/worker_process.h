// A tessel-worker child process and the framed messages (4-byte little-endian
// length, then a serialized protobuf) on its stdin/stdout. Internal to measure/.
#pragma once

#include "measure.pb.h"
#include "support/error.h"

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace tessel::measure::detail {

using Clock = std::chrono::steady_clock;

// Frames on file descriptors; the worker uses the same two functions on its side.
Status write_frame(int fd, const google::protobuf::MessageLite &message);
enum class ReadResult { Message, Timeout, Closed, Malformed };
ReadResult read_frame(int fd, google::protobuf::MessageLite &message, Clock::time_point deadline);

constexpr uint32_t kMaxFrameBytes = 512u << 20; // an artifact plus reference outputs at most

class WorkerProcess {
public:
  WorkerProcess(std::string exe, std::vector<std::string> args) : exe_(std::move(exe)), args_(std::move(args)) {}
  ~WorkerProcess() { stop(); }
  WorkerProcess(const WorkerProcess &) = delete;
  WorkerProcess &operator=(const WorkerProcess &) = delete;

  Status start(); // no-op when running
  bool running() const { return pid_ > 0; }
  Status send(const wire::WorkerRequest &request);
  // A reply, or Timeout (the worker is still running), Closed (it died: see death()).
  ReadResult receive(wire::WorkerReply &reply, Clock::time_point deadline);
  // Kills (SIGKILL) and reaps it; death() then says how it ended.
  void stop();
  // After Closed: reaps it and says how it ended ("killed by signal 11 (Segmentation fault)").
  std::string death();
  int restarts() const { return restarts_; }

private:
  std::string exe_;
  std::vector<std::string> args_;
  pid_t pid_ = -1;
  int to_child_ = -1, from_child_ = -1;
  int restarts_ = -1;
  std::string last_death_;
};

} // namespace tessel::measure::detail
