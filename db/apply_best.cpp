// apply_best: the fastest record of a workload on a target (re-measured figures
// before single-shot ones), checked and replayed, or the reason none applies. Nothing is applied silently: a record
// of another target (the compatible fallback) or one that was not the fastest
// comes with a note saying so.
#include "db/detail.h"
#include "schedules/intrinsics.h"
#include "te/text.h"

#include <algorithm>

namespace tessel::db {

namespace {

constexpr int kCandidates = 8; // records tried, fastest first, before giving up
constexpr int kPool = 64;      // the fastest records read to find re-measured ones among them

std::string target_words(const TargetKey &t) { return short_target(t) + " (" + t.cpu_model + ")"; }

std::string level_of(const TargetKey &t) {
  auto pos = t.compat.find("level=");
  if (pos != std::string::npos) return t.compat.substr(pos + 6, t.compat.find(' ', pos) - pos - 6) + " level";
  return t.compat;
}

// Why record `r` must not be applied to `w` on `target`, or its schedule.
Expected<sched::Schedule> check_and_replay(const Record &r, const te::Workload &w, const TargetKey &target) {
  std::string hash = w.hash_hex();
  if (r.workload_hash != hash) return make_error("it is stored for workload hash " + r.workload_hash + ", not " + hash);
  if (r.trace_version > sched::kTraceFormatVersion)
    return make_error("its trace has format version " + std::to_string(r.trace_version) +
                      ", written by a newer Tessel (this one reads up to " +
                      std::to_string(sched::kTraceFormatVersion) + "); upgrade Tessel or re-tune");
  // The stored text form, parsed by this Tessel, must still give the stored hash: a
  // structural hash that changed between versions would otherwise match the wrong workload.
  auto stored = catch_errors([&] { return te::parse_workload(r.workload_text, "stored workload"); });
  if (!stored || !*stored)
    return make_error("stale: its stored workload text no longer parses (" +
                      (!stored ? stored.error() : (*stored).error()) + "); re-tune " + w.key);
  if (std::string now = (*stored)->hash_hex(); now != r.workload_hash)
    return make_error("stale workload hash: its stored workload text now hashes to " + now + ", but it is stored as " +
                      r.workload_hash + " (the hash changed between Tessel versions); re-tune " + w.key);
  auto trace = sched::parse_trace(r.trace_json);
  if (!trace) return make_error("its trace is refused: " + trace.error());
  if (trace->version != r.trace_version)
    return make_error("the record says trace version " + std::to_string(r.trace_version) + " but its trace says " +
                      std::to_string(trace->version));
  if (!trace->workload_hash.empty() && trace->workload_hash != hash)
    return make_error("its trace was made for workload " + trace->workload_key + " (hash " + trace->workload_hash +
                      "), not " + w.key + " (hash " + hash + ")");
  if (r.target.canonical != target.canonical) {
    // Same class, other CPU: the kernel is compiled for `target`, but a tensor intrinsic the
    // trace calls must exist there.
    auto isa = isa_of(target);
    for (auto &step : trace->steps) {
      if (step.op != "tensorize") continue;
      const sched::TensorIntrinsic *in = sched::find_tensor_intrinsic(step.str);
      if (in && in->target_kind == "cpu" && std::find(isa.begin(), isa.end(), in->required_feature) == isa.end())
        return make_error("its trace tensorizes onto " + in->name + ", which needs " + in->required_feature +
                          ", and target " + short_target(target) + " lacks it");
    }
  }
  auto schedule = sched::replay(w, trace->steps);
  if (!schedule) return make_error("its trace no longer replays on this Tessel: " + schedule.error());
  return schedule.take();
}

std::string no_record(const Database &db, const te::Workload &w, const TargetKey &target, TargetMatch match) {
  std::string msg = "no ok record for workload " + w.key + " (hash " + w.hash_hex() + ") on target " +
                    target_words(target) + " in " + db.describe();
  auto targets = db.targets_for_workload(w.hash_hex());
  if (!targets) return msg + " (and listing its targets failed: " + targets.error() + ")";
  if (targets->empty()) return msg + "; the database has no ok record of this workload on any target (tune it)";
  std::vector<std::string> all, compatible;
  for (auto &t : *targets) {
    all.push_back(target_words(t));
    if (t.compat == target.compat) compatible.push_back(target_words(t));
  }
  auto join = [](const std::vector<std::string> &v) {
    std::string s;
    for (auto &x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
  };
  msg += "; it has records for " + join(all);
  if (!compatible.empty() && match == TargetMatch::Exact)
    msg += "; " + join(compatible) + " is in the same class (" + target.compat +
           "): ask for TargetMatch::Compatible (the compatible fallback) to use it";
  else
    msg += " (none in this target's class, " + target.compat + ")";
  return msg;
}

} // namespace

Expected<AppliedBest> apply_best(const Database &db, const te::Workload &w, const TargetKey &target,
                                 TargetMatch match) {
  std::string hash = w.hash_hex();
  auto top = db.top_k(hash, target, kPool, match);
  if (!top) return make_error(top.error());
  if (top->empty()) return make_error(no_record(db, w, target, match));
  // Figures re-measured interleaved come first: a single-shot figure faster than every re-measured one
  // is more likely noise than a faster kernel (the re-measurement covered the tuner's best candidates).
  std::stable_partition(top->begin(), top->end(), [](const Record &r) { return is_remeasured(r); });
  if (top->size() > size_t(kCandidates)) top->resize(size_t(kCandidates));
  std::vector<std::string> skipped;
  for (auto &r : *top) {
    auto schedule = check_and_replay(r, w, target);
    if (!schedule) {
      skipped.push_back("record " + std::to_string(r.id) + ": " + schedule.error());
      continue;
    }
    AppliedBest out{r, schedule.take(), ""};
    if (r.target.canonical != target.canonical)
      out.note = "record " + std::to_string(r.id) + " measured on target " + target_words(r.target) + ", used for " +
                 target_words(target) + " through the compatible fallback (same " + level_of(target) + ")";
    if (!skipped.empty()) {
      std::string why;
      for (auto &s : skipped) why += (why.empty() ? "" : "; ") + s;
      out.note += std::string(out.note.empty() ? "" : "; ") + std::to_string(skipped.size()) +
                  " faster record(s) skipped: " + why;
    }
    return out;
  }
  std::string why;
  for (auto &s : skipped) why += (why.empty() ? "" : "; ") + s;
  return make_error("no record of workload " + w.key + " (hash " + hash + ") applies on target " +
                    target_words(target) + ": " + why);
}

} // namespace tessel::db
