// Schedule primitives. Each checks its preconditions and returns an error
// value for an illegal request (never silently wrong code), and on success
// appends its Step to the schedule's trace so the schedule can be replayed.
// Loops are named by their index in Stage::loops; new loops are appended, so
// the same primitives on the same workload always yield the same indices.
#pragma once

#include "schedules/schedule.h"
#include "support/error.h"

#include <string>
#include <vector>

namespace tessel::sched {

struct SplitResult {
  int outer, inner;
};

// Splits leaf `loop` into (outer, inner) with inner extent `factor`; a factor
// that does not divide the extent leaves a guarded partial last tile.
Expected<SplitResult> split(Schedule &s, const std::string &stage, int loop, int64_t factor);
// The same without tail handling: the factor must divide the extent, so the
// loops carry no guard (refused otherwise, rather than silently guarded).
Expected<SplitResult> split_exact(Schedule &s, const std::string &stage, int loop, int64_t factor);
// Splits leaf `loop` into `nparts` outer iterations (inner extent ceil(extent / nparts)).
Expected<SplitResult> split_nparts(Schedule &s, const std::string &stage, int loop, int64_t nparts);
// Fuses two adjacent leaves (outer directly above inner) of the same kind.
Expected<int> fuse(Schedule &s, const std::string &stage, int outer, int inner);
// Reorders the given leaves into this relative order (others keep their slots).
Status reorder(Schedule &s, const std::string &stage, const std::vector<int> &order);
// Marks a spatial leaf parallel (one parallel loop per stage, none inside another).
Status parallel(Schedule &s, const std::string &stage, int loop);
// Marks a spatial leaf vectorized (extent 2..64); loops inside stay loops over vector bodies.
Status vectorize(Schedule &s, const std::string &stage, int loop);
// Marks a leaf unrolled (extent up to 1024).
Status unroll(Schedule &s, const std::string &stage, int loop);
// Binds a spatial leaf to a GPU index: blockIdx.{x,y,z}, threadIdx.{x,y,z} or vthread.
Status bind(Schedule &s, const std::string &stage, int loop, const std::string &thread_tag);

// Pragma: inside leaf `loop`, unroll every serial loop whose total trip count
// (its extent times those of the loops inside it) is at most `max_step`.
Status auto_unroll(Schedule &s, const std::string &stage, int loop, int64_t max_step);

// Computes a pure elementwise, non-output stage inside its consumers' expressions.
Status compute_inline(Schedule &s, const std::string &stage);
// Computes `stage` inside leaf `loop` of `consumer`, for the region that loop's
// body reads. Every stage that reads `stage` must be `consumer` or already be
// computed at that same loop (a stage two others read, like softmax's exps,
// then lives per row next to them); later steps may not move them away.
Status compute_at(Schedule &s, const std::string &stage, const std::string &consumer, int loop);
// Computes the output `stage`, an elementwise consumer of `producer` that reads it
// element for element, inside leaf `loop` of the producer, right after the
// loop's body produced its part (the fused epilogue of a tile). `loop` must lie
// outside the producer's reduction loops, so only finished values are read.
Status reverse_compute_at(Schedule &s, const std::string &stage, const std::string &producer, int loop);
// Factors the reduction of `stage` over leaf `loop` — the inner part of a split
// reduction axis, or a whole reduction axis — into a new stage `<stage>_rf`
// with that loop as an extra (outermost) spatial axis holding partial results;
// `stage` then reduces the partials. The partials can be vectorized or run in
// parallel. Must precede other transformations of `stage` except that split.
// With `partials_last` the partial axis is the new stage's last (innermost,
// contiguous) axis instead (trace op "rfactor_last"): vectors of partials are
// then dense in memory. Returns the new stage's name.
Expected<std::string> rfactor(Schedule &s, const std::string &stage, int loop, bool partials_last = false);
// A blocked, permuted layout: dimension `dim` is split by `block` (the block
// index stays in its place, the within-block index is appended last), then the
// dimensions are reordered by `perm`, a permutation of 0..rank. E.g. NCHW with
// dim=1, block=16, perm={0,1,2,3,4} is NCHW16c; block=1 with a perm is a transpose.
struct Layout {
  int dim = 0;
  int64_t block = 1;
  std::vector<int64_t> perm;
};

// Adds a stage `<stage>_<scope>` that computes `stage` into a buffer of `scope`;
// `stage` becomes a copy of it. Must precede any loop transformation of `stage`.
// With a layout, the cache is stored blocked/permuted (e.g. an NCHW16c
// accumulator whose 16 channels are contiguous for vector code); the block
// must divide the dimension. Returns the new stage's name.
Expected<std::string> cache_write(Schedule &s, const std::string &stage, ir::MemoryScope scope,
                                  const Layout *layout = nullptr);
// Adds a stage `<tensor>_<scope>` copying `tensor` that `consumer` reads instead.
Expected<std::string> cache_read(Schedule &s, const std::string &tensor, const std::string &consumer,
                                 ir::MemoryScope scope);
// Pads each innermost row of a cache stage's buffer (shared or local scope) by
// `elements` unused elements (1..64): consecutive rows then start in different
// shared-memory banks, so a warp reading down a column of the tile is not
// serialized. Layout only: the values computed do not change.
Status storage_pad(Schedule &s, const std::string &stage, int64_t elements);
// Re-lays-out input `input`: dimension `dim` is blocked by `block` (outer
// block index in its place, the within-block index appended last), then the
// dimensions are permuted by `perm` (a permutation of 0..rank). E.g. B[K, N]
// with dim=1, block=16, perm={1, 0, 2} becomes B_packed[N/16, K, 16]. A
// constant input is packed once ahead of time by a separate function.
// Returns the packed stage's name.
Expected<std::string> transform_layout(Schedule &s, const std::string &input, int dim, int64_t block,
                                       const std::vector<int64_t> &perm);

// Maps leaf `loop` and the two leaves inside it — two spatial loops and one
// reduction loop of a sum of products C[i, j] += A[.., k] * B[k, j] — onto a
// tensor intrinsic (schedules/intrinsics.h). The tile's loops must be serial
// and guard-free (split_exact), of the intrinsic's dtypes and fixed shape if it
// has one, with some choice of i, j, k making B and C contiguous along j. A
// warp-level (WMMA) intrinsic needs a fragment-scope stage and no threadIdx.x
// loop (a warp's lanes). Strides through fused loops or blocked layouts are
// checked when lowering, on the final indices.
Status tensorize(Schedule &s, const std::string &stage, int loop, const std::string &intrinsic);

// Re-applies one recorded step (used by trace replay).
Status apply_step(Schedule &s, const Step &step);

} // namespace tessel::sched
