// The schedule space of a workload on a target (Ansor-style): sketch rules
// decide the structure of candidate schedules, random annotation fills in
// their decisions. Sampling is seeded and reproducible across machines.
//
// CPU rules, applied per stage:
//  * inline      — pure elementwise, non-output stages are computed inside their consumers (or, as a
//                  decision, kept in a buffer: costly ones read twice, paddings read through a window);
//  * tile        — a reduction is tiled S-S-R-S-R-S: spatial axes in four levels,
//                  reduction axes in two, ordered s0 s1 r0 s2 r1 s3;
//  * cache_write — (variant) the reduction accumulates into a local tile computed at the
//                  outer tile loop of a copy stage, or of its elementwise consumer when it
//                  has exactly one (a fused epilogue such as bias + ReLU);
//  * pack        — (variant) a constant input indexed by the innermost spatial axis is
//                  re-laid-out ahead of time so that the vector loop reads it contiguously;
//  * tensorize   — (variant) a sum of products over (batch..., i, j) x k whose dtypes match
//                  a tensor intrinsic the target has (schedules/intrinsics.h: AVX-512, AMX)
//                  runs its local tile on it;
//  * rfactor     — (variant) a reduction with little spatial work (at most 16 outputs)
//                  over a long axis is split into vectorized partial results (rfactor);
//  * rowwise     — (variant) in a workload of row reductions and row-wise elementwise stages (softmax,
//                  layernorm), every intermediate is computed inside the output's loop over rows, for
//                  those rows only: a row stays in L1 across the passes over it;
//  * elementwise — other stages are tiled in two levels.
// CUDA rules (S-S-S-R-R-S-R-S): spatial axes in five levels bound to blockIdx, vthread
// and threadIdx (then two per-thread levels), reductions in three; the result
// accumulates in a per-thread local tile; (variant) inputs are staged in shared memory
// per block at the outer reduction level, fetched cooperatively by the block's
// threads; (variant) a reduction with few outputs over a long axis becomes a
// cross-thread reduction (one block per output, the axis split over threadIdx);
// (variant) a (batched) contraction whose dtypes and 16-multiple shape fit the target's tensor
// cores runs on WMMA: blocks of warps (threadIdx.y), each accumulating 16 x 16 fragments
// (scope fragment) from A and B staged in shared memory (tensor-core tiling);
// elementwise stages are fused and bound to blocks and threads.
// Annotation: outer tile loops are fused and parallel; the innermost spatial loop is
// vectorized when 2..64 wide; small inner loops are unrolled; an auto-unroll pragma
// (max step 0, 16 or 64) goes on the outermost loop.
#pragma once

#include "schedules/schedule.h"
#include "support/error.h"
#include "target/target.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace tessel::sched {

struct Sketch {
  std::string name; // e.g. "tile+cache_write+pack"
  bool cache_write = false;
  bool pack = false;
  bool rfactor = false;
  bool tensorize = false;         // CPU: local tiles run on a tensor intrinsic
  bool channels = false;          // CPU: the accumulator blocked by vector-wide channel groups (NCHWc)
  bool rowwise = false;           // CPU: intermediates computed per block of output rows (softmax, layernorm)
  bool shared = false;            // CUDA: stage inputs in shared memory
  bool cross_thread = false;      // CUDA: small-output reductions reduce across threads
  bool tensor_core = false;       // CUDA: contractions run on warp-level tensor-core intrinsics (WMMA)
  std::vector<std::string> rules; // one line per rule application, for people
};

// Deterministic on every platform (the standard's distributions are not).
class Rng {
public:
  explicit Rng(uint64_t seed) : state_(seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull) {}
  uint64_t next();
  int64_t below(int64_t n) { return n <= 1 ? 0 : int64_t(next() % uint64_t(n)); }

private:
  uint64_t state_;
};

// The choices one sample made: each draw's bound and pick, in order. Replaying them gives the same
// schedule. Changing one and replaying changes that decision and, consistently, every step it drives
// (a tile size in both the outer stage and its local accumulator), which editing trace steps cannot.
struct Decisions {
  std::vector<int64_t> bounds, picks;
  bool operator==(const Decisions &) const = default;
};

class SpaceGenerator {
public:
  // `threads`: what the schedules will run with. With more than one, a convolution's padding is always
  // inlined: kept in a buffer, each core reads what the others wrote, which cost 15-25% on 2 cores.
  explicit SpaceGenerator(Target target, int threads = 1) : target_(std::move(target)), threads_(threads) {}
  // A check samples must pass (e.g. lower and verify GPU resource limits);
  // sample() draws again, up to 64 times, while it fails.
  using Validator = std::function<Status(const Schedule &)>;
  void set_validator(Validator v) { validator_ = std::move(v); }
  std::vector<Sketch> sketches(const te::Workload &w) const;
  // A concrete schedule of the sketch: tile sizes from random factorizations of
  // the extents, random annotations. Its trace replays to the same program.
  // With `made`, also the choices that made it.
  Expected<Schedule> sample(const te::Workload &w, const Sketch &sketch, Rng &rng, Decisions *made = nullptr) const;
  // The schedule `decisions` make (a pick beyond a changed bound wraps around; draws past the end come
  // from rng); `decisions` becomes the choices it took. Fails, without redrawing, when the validator does.
  Expected<Schedule> resample(const te::Workload &w, const Sketch &sketch, Decisions &decisions, Rng &rng) const;

private:
  Target target_;
  int threads_ = 1;
  Validator validator_;
};

// The untuned GPU mapping, what a GPU schedule's speed-up is measured against (the default schedule
// would run the whole loop nest on one GPU thread: seconds for a 1024^3 matmul): every stage at
// root, one kernel each, its spatial loops fused and spread over blocks of up to 256 threads, each
// thread computing one element (its reduction serial); a stage without spatial loops on one thread.
Expected<Schedule> default_gpu_schedule(const te::Workload &w, const Target &target);
// The untuned schedule for `target`: default_gpu_schedule on a GPU, else default_schedule (its outer
// loop parallel when asked).
Expected<Schedule> default_schedule_for(const te::Workload &w, const Target &target, bool parallel_outer = false);

} // namespace tessel::sched
