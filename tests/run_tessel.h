// Runs the `tessel` binary (TESSEL_EXE) as a user would, output captured and
// killed after a time limit; for tests of the command line.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace tessel::testing {

struct Outcome {
  bool exited = false; // false: killed by a signal (or by us, on time-out)
  int code = 0;        // exit code, or the signal
  bool timed_out = false;
  std::string output; // stdout and stderr together
};

struct TesselCall {
  std::vector<std::string> env; // "NAME=VALUE" set, "NAME" unset, in the child only
  std::string stdin_file;       // empty: /dev/null
  bool in_dir = false;          // run with `dir` as the working directory
};

// `dir` holds the captured output (out.txt).
inline Outcome run_tessel(const std::vector<std::string> &args, std::chrono::seconds limit,
                          const std::filesystem::path &dir, const TesselCall &call = {}) {
  std::filesystem::path out_file = dir / "out.txt";
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    int in = open(call.stdin_file.empty() ? "/dev/null" : call.stdin_file.c_str(), O_RDONLY);
    dup2(in, 0);
    for (const std::string &e : call.env) {
      auto eq = e.find('=');
      if (eq == std::string::npos)
        unsetenv(e.c_str());
      else
        setenv(e.substr(0, eq).c_str(), e.substr(eq + 1).c_str(), 1);
    }
    if (call.in_dir && chdir(dir.c_str()) != 0) _exit(126);
    std::vector<char *> argv;
    std::string exe = TESSEL_EXE;
    argv.push_back(exe.data());
    std::vector<std::string> copy = args;
    for (auto &a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(exe.c_str(), argv.data());
    _exit(127);
  }
  Outcome o;
  auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (true) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      o.timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  o.exited = WIFEXITED(status);
  o.code = o.exited ? WEXITSTATUS(status) : WTERMSIG(status);
  std::ifstream in(out_file);
  std::stringstream ss;
  ss << in.rdbuf();
  o.output = ss.str();
  return o;
}

} // namespace tessel::testing
