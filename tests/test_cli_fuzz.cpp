// The `tessel` command fed random and mutated input, as a careless or
// adversarial user would: operator specs, text workloads and schedule traces
// through `show`, `space` and `run --no-verify`. Every run must either work or
// be refused with an error line and exit code 1 or 2, within a time limit:
// never a signal, a hang, or the last-resort "internal error".
//
// TESSEL_CLI_FUZZ_ROUNDS=N (default 200) sets the number of rounds; the seed is
// fixed, so a failure replays.
#include "run_tessel.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;

using tessel::testing::Outcome;
using tessel::testing::run_tessel;

std::string read_file(const fs::path &p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Mutations that keep inputs near the grammar, where the interesting bugs are.
class Mutator {
public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}
  int below(int n) { return int(rng_() % uint64_t(n)); }

  // small_numbers: numbers are only replaced by one digit, so `run` stays fast.
  std::string mutate(std::string s, bool small_numbers) {
    static const std::vector<std::string> tokens = {
        "0", "-1", "1",  "99999999999", "2147483648", ",",   "=",  ":",     "[", "]", "{", "}", "\"",  "(",   ")",
        "x", " ",  "\n", "sum(",        "k",          "f16", "i8", "const", "#", "*", "/", "%", "1e9", "null"};
    int n = 1 + below(3);
    for (int m = 0; m < n; ++m) {
      if (s.empty()) s = "x";
      size_t at = size_t(below(int(s.size())));
      switch (below(small_numbers ? 5 : 6)) {
      case 0: s.erase(at, size_t(1 + below(4))); break;                                 // delete a few bytes
      case 1: s.insert(at, tokens[size_t(below(int(tokens.size())))]); break;           // insert a token
      case 2: s[at] = char(32 + below(95)); break;                                      // replace a byte
      case 3: s.insert(at, s.substr(at, size_t(1 + below(8)))); break;                  // duplicate a run
      case 4: replace_number(s, std::to_string(below(10))); break;                      // another small number
      case 5: replace_number(s, small_numbers ? "3" : tokens[size_t(below(5))]); break; // an extreme number
      }
    }
    return s;
  }

private:
  void replace_number(std::string &s, const std::string &with) {
    std::vector<size_t> starts;
    for (size_t i = 0; i < s.size(); ++i)
      if (std::isdigit((unsigned char)s[i]) && (i == 0 || !std::isdigit((unsigned char)s[i - 1]))) starts.push_back(i);
    if (starts.empty()) return;
    size_t b = starts[size_t(below(int(starts.size())))], e = b;
    while (e < s.size() && std::isdigit((unsigned char)s[e])) ++e;
    s.replace(b, e - b, with);
  }
  std::mt19937_64 rng_;
};

const std::vector<std::string> kSpecs = {
    "matmul:M=8,N=8,K=8",
    "dense:M=4,N=16,K=8",
    "batch_matmul:B=2,M=4,N=8,K=4",
    "conv2d:N=1,C=4,H=6,W=6,K=4,R=3,S=3,stride=1,pad=1",
    "conv2d:N=1,C=4,H=6,W=6,K=4,R=3,S=3,stride=2,pad=1,layout=NHWC",
    "depthwise_conv2d:N=1,C=4,H=6,W=6,R=3,S=3,stride=1,pad=1",
    "softmax:M=4,N=16",
    "layernorm:M=4,N=8",
    "relu:M=4,N=8",
    "matmul:M=8,N=8,K=8,dtype=f16",
};

} // namespace

TEST(CliFuzz, MutatedInputsWorkOrAreRefusedWithAnError) {
  int rounds = 200;
  if (const char *env = std::getenv("TESSEL_CLI_FUZZ_ROUNDS")) rounds = std::atoi(env);
  fs::path dir = fs::temp_directory_path() / ("tessel_cli_fuzz_" + std::to_string(getpid()));
  fs::create_directories(dir);
  std::vector<std::string> texts;
  for (auto &e : fs::directory_iterator(std::string(TESSEL_SOURCE_DIR) + "/configs/workloads"))
    if (e.path().extension() == ".te" && fs::file_size(e.path()) < 4096) texts.push_back(read_file(e.path()));
  ASSERT_FALSE(texts.empty());
  // One sampled trace per spec, made by the CLI itself, as mutation seeds.
  std::vector<std::pair<std::string, std::string>> traces; // spec, trace JSON
  for (size_t i = 0; i < kSpecs.size(); i += 2) {
    fs::path t = dir / "seed.json";
    Outcome o = run_tessel({"space", kSpecs[i], "--sample", "1", "--seed", std::to_string(i), "-o", t.string()},
                           std::chrono::seconds(60), dir);
    ASSERT_TRUE(o.exited && o.code == 0) << kSpecs[i] << ": " << o.output;
    traces.emplace_back(kSpecs[i], read_file(t));
  }

  Mutator mut(20261202);
  int worked = 0, refused = 0;
  for (int round = 0; round < rounds; ++round) {
    std::vector<std::string> args;
    int kind = mut.below(6);
    bool run = kind >= 4;
    fs::path file = dir / ("input_" + std::to_string(round % 4) + (kind == 2 || kind == 5 ? ".json" : ".te"));
    const std::string &spec = kSpecs[size_t(mut.below(int(kSpecs.size())))];
    switch (kind) {
    case 0: args = {"show", mut.mutate(spec, false), "--ir"}; break;
    case 1: {
      std::ofstream(file) << mut.mutate(texts[size_t(mut.below(int(texts.size())))], false);
      args = {"show", file.string(), "--te"};
      break;
    }
    case 2: {
      auto &[tspec, json] = traces[size_t(mut.below(int(traces.size())))];
      std::ofstream(file) << mut.mutate(json, false);
      args = {"show", tspec, "--trace", file.string(), "--ir"};
      break;
    }
    case 3: args = {"space", mut.mutate(spec, false), "--sample", "2", "--seed", std::to_string(round)}; break;
    case 4: args = {"run", mut.mutate(spec, true), "--no-verify", "--repeat", "1"}; break;
    case 5: {
      auto &[tspec, json] = traces[size_t(mut.below(int(traces.size())))];
      std::ofstream(file) << mut.mutate(json, true);
      args = {"run", tspec, "--trace", file.string(), "--no-verify", "--repeat", "1"};
      break;
    }
    }
    std::string cmd = "tessel";
    for (auto &a : args) cmd += " '" + a + "'";
    if (kind == 1 || kind == 2 || kind == 5) cmd += "\n  with " + file.string() + ":\n" + read_file(file);
    Outcome o = run_tessel(args, std::chrono::seconds(run ? 60 : 30), dir);
    ASSERT_FALSE(o.timed_out) << "round " << round << ": hung\n" << cmd;
    ASSERT_TRUE(o.exited) << "round " << round << ": killed by signal " << o.code << "\n" << cmd << "\n" << o.output;
    ASSERT_TRUE(o.code == 0 || o.code == 1 || o.code == 2) << "round " << round << ": exit code " << o.code << "\n"
                                                           << cmd << "\n"
                                                           << o.output;
    ASSERT_EQ(o.output.find("internal error"), std::string::npos) << "round " << round << "\n"
                                                                  << cmd << "\n"
                                                                  << o.output;
    if (o.code != 0) {
      ASSERT_NE(o.output.find("error"), std::string::npos) << "round " << round << ": refused without saying why\n"
                                                           << cmd << "\n"
                                                           << o.output;
      ++refused;
    } else {
      ++worked;
    }
  }
  fs::remove_all(dir);
  std::cout << "[ note     ] " << rounds << " rounds: " << worked << " worked, " << refused
            << " refused with an error\n";
  EXPECT_GT(refused, 0) << "the mutations never produced bad input: the fuzz is not testing refusals";
}
