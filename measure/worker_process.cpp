#include "measure/worker_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char **environ;

namespace tessel::measure::detail {

namespace {

bool write_all(int fd, const char *data, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w, n -= size_t(w);
  }
  return true;
}

// Reads exactly n bytes before the deadline.
ReadResult read_all(int fd, char *data, size_t n, Clock::time_point deadline) {
  while (n > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left < 0) left = 0;
    pollfd p{fd, POLLIN, 0};
    int ready = ::poll(&p, 1, int(std::min<int64_t>(left, 1 << 30)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) return ReadResult::Timeout;
    ssize_t r = ::read(fd, data, n);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (r <= 0) return ReadResult::Closed;
    data += r, n -= size_t(r);
  }
  return ReadResult::Message;
}

} // namespace

Status write_frame(int fd, const google::protobuf::MessageLite &message) {
  std::string body;
  if (!message.SerializeToString(&body)) return Status::error("cannot serialize a worker message");
  uint32_t n = uint32_t(body.size());
  char header[4] = {char(n & 0xff), char((n >> 8) & 0xff), char((n >> 16) & 0xff), char((n >> 24) & 0xff)};
  if (!write_all(fd, header, 4) || !write_all(fd, body.data(), body.size()))
    return Status::error(std::string("writing to the worker pipe failed: ") + std::strerror(errno));
  return Status::ok();
}

ReadResult read_frame(int fd, google::protobuf::MessageLite &message, Clock::time_point deadline) {
  unsigned char header[4];
  if (auto r = read_all(fd, reinterpret_cast<char *>(header), 4, deadline); r != ReadResult::Message) return r;
  uint32_t n = uint32_t(header[0]) | uint32_t(header[1]) << 8 | uint32_t(header[2]) << 16 | uint32_t(header[3]) << 24;
  if (n > kMaxFrameBytes) return ReadResult::Malformed;
  std::string body(n, '\0');
  // The rest of a frame follows at once; a peer stuck mid-frame is as good as dead.
  if (auto r = read_all(fd, body.data(), n, std::max(deadline, Clock::now() + std::chrono::seconds(10)));
      r != ReadResult::Message)
    return r == ReadResult::Timeout ? ReadResult::Closed : r;
  return message.ParseFromString(body) ? ReadResult::Message : ReadResult::Malformed;
}

Status WorkerProcess::start() {
  if (pid_ > 0) return Status::ok();
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return Status::error(std::string("pipe: ") + std::strerror(errno));
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(in[0]), ::close(in[1]);
    return Status::error(std::string("pipe: ") + std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  std::vector<std::string> words = {exe_};
  words.insert(words.end(), args_.begin(), args_.end());
  std::vector<char *> argv;
  for (auto &w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, exe_.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(in[0]), ::close(out[1]);
  if (rc != 0) {
    ::close(in[1]), ::close(out[0]);
    return Status::error("cannot start the measurement worker " + exe_ + ": " + std::strerror(rc) +
                         " (set TESSEL_WORKER to the tessel-worker executable)");
  }
  pid_ = pid, to_child_ = in[1], from_child_ = out[0];
  ++restarts_;
  // A worker that dies must not kill us with SIGPIPE when we write to it.
  ::signal(SIGPIPE, SIG_IGN);
  return Status::ok();
}

Status WorkerProcess::send(const wire::WorkerRequest &request) {
  if (pid_ <= 0) return Status::error("the worker is not running");
  return write_frame(to_child_, request);
}

ReadResult WorkerProcess::receive(wire::WorkerReply &reply, Clock::time_point deadline) {
  if (pid_ <= 0) return ReadResult::Closed;
  return read_frame(from_child_, reply, deadline);
}

void WorkerProcess::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  death();
}

std::string WorkerProcess::death() {
  if (pid_ <= 0) return last_death_;
  ::close(to_child_), ::close(from_child_);
  to_child_ = from_child_ = -1;
  int status = 0;
  pid_t r;
  while ((r = ::waitpid(pid_, &status, 0)) < 0 && errno == EINTR) {
  }
  if (r != pid_)
    last_death_ = "the worker disappeared";
  else if (WIFSIGNALED(status))
    last_death_ = "killed by signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
  else
    last_death_ = "exited with status " + std::to_string(WEXITSTATUS(status));
  pid_ = -1;
  return last_death_;
}

} // namespace tessel::measure::detail
