#include "runtime/runtime.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include <immintrin.h>

namespace {

// After a parallel region, workers (and the caller, waiting for them) spin this long before sleeping:
// a kernel's next loop nest, or the next call of a timing loop, then starts without a futex wake-up
// (tens of microseconds, as long as a small kernel), as OpenMP runtimes do.
constexpr auto kSpin = std::chrono::microseconds(100);

// Spins until `ready()` or kSpin has passed; whether it became ready.
template <typename F> bool spin_until(F ready) {
  auto deadline = std::chrono::steady_clock::now() + kSpin;
  for (int i = 0;; ++i) {
    if (ready()) return true;
    _mm_pause();
    if ((i & 63) == 63 && std::chrono::steady_clock::now() > deadline) return ready();
  }
}

thread_local bool in_task = false;

class ThreadPool {
public:
  static ThreadPool &get() {
    static ThreadPool pool;
    return pool;
  }
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_.store(true);
    }
    wake_.notify_all();
    for (auto &t : workers_) t.join();
  }

  void set_threads(int n) {
    if (n <= 0) n = int(std::max(1u, std::thread::hardware_concurrency()));
    std::lock_guard<std::mutex> run(run_mu_);
    threads_ = n;
  }
  int threads() const { return threads_; }

  void run(int64_t n, tessel_task_fn task, void *closure) {
    if (n <= 0) return;
    int t = int(std::min<int64_t>(threads_, n));
    if (t <= 1 || in_task) {
      bool was = in_task;
      in_task = true;
      task(0, n, closure);
      in_task = was;
      return;
    }
    std::lock_guard<std::mutex> run(run_mu_); // one parallel region at a time
    ensure_workers(t - 1);
    {
      std::lock_guard<std::mutex> g(mu_);
      task_ = task;
      closure_ = closure;
      n_ = n;
      chunks_ = t;
      pending_.store(t - 1); // before next_chunk_: a worker may start on chunk 1 at once
      next_chunk_.store(1);
      generation_.fetch_add(1, std::memory_order_release); // spinning workers see the task after this
    }
    wake_.notify_all();
    in_task = true;
    run_chunk(0);
    in_task = false;
    // Main thread also steals chunks left by slow-to-wake workers.
    for (int c; (c = next_chunk_.fetch_add(1)) < chunks_;) {
      in_task = true;
      run_chunk(c);
      in_task = false;
      pending_.fetch_sub(1);
    }
    if (spin_until([&] { return pending_.load() == 0; })) return;
    std::unique_lock<std::mutex> g(mu_);
    done_.wait(g, [&] { return pending_.load() == 0; });
  }

private:
  ThreadPool() { set_threads(0); }

  void run_chunk(int c) {
    int64_t begin = n_ * c / chunks_, end = n_ * (c + 1) / chunks_;
    if (begin < end) task_(begin, end, closure_);
  }

  void ensure_workers(int n) {
    while (int(workers_.size()) < n) workers_.emplace_back([this] { worker_loop(); });
  }

  void worker_loop() {
    uint64_t seen = 0;
    in_task = true;
    for (;;) {
      auto woken = [&] { return stop_.load() || generation_.load(std::memory_order_acquire) != seen; };
      if (!spin_until(woken)) {
        std::unique_lock<std::mutex> g(mu_);
        wake_.wait(g, woken);
      }
      if (stop_.load()) return;
      seen = generation_.load(std::memory_order_acquire);
      for (int c; (c = next_chunk_.fetch_add(1)) < chunks_;) {
        run_chunk(c);
        if (pending_.fetch_sub(1) == 1) {
          std::lock_guard<std::mutex> g(mu_);
          done_.notify_all();
        }
      }
    }
  }

  std::mutex run_mu_, mu_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> generation_{0};
  int threads_ = 1;
  tessel_task_fn task_ = nullptr;
  void *closure_ = nullptr;
  int64_t n_ = 0;
  int chunks_ = 0;
  std::atomic<int> next_chunk_{0}, pending_{0};
};

} // namespace

extern "C" {

void tessel_parallel_for(int64_t n, tessel_task_fn task, void *closure) { ThreadPool::get().run(n, task, closure); }
void tessel_set_num_threads(int n) { ThreadPool::get().set_threads(n); }
int tessel_get_num_threads(void) { return ThreadPool::get().threads(); }

void *tessel_alloc(int64_t bytes) {
  size_t size = (size_t(std::max<int64_t>(bytes, 1)) + 63) / 64 * 64;
  void *p = std::aligned_alloc(64, size);
  if (!p) {
    std::fprintf(stderr, "tessel runtime: out of memory allocating %lld bytes\n", (long long)bytes);
    std::abort();
  }
  return p;
}
void tessel_free(void *p) { std::free(p); }
}
