#include "measure/wire.h"

namespace tessel::measure::detail {

wire::Artifact to_wire(const Artifact &a) {
  wire::Artifact w;
  w.set_candidate_id(a.candidate_id);
  w.set_workload_text(a.workload_text);
  w.set_workload_hash(a.workload_hash);
  w.set_target_json(a.target_json);
  w.set_object(a.code.object);
  for (auto &p : a.code.packs) {
    auto *pw = w.add_packs();
    pw->set_symbol(p.symbol);
    pw->set_input(p.input);
    pw->set_bytes(p.bytes);
  }
  w.set_kernel_symbol(a.code.kernel);
  for (auto [source, index] : a.code.args) {
    auto *arg = w.add_args();
    arg->set_source(source == codegen::ObjectCode::Source::Input    ? wire::KernelArgument::INPUT
                    : source == codegen::ObjectCode::Source::Packed ? wire::KernelArgument::PACKED
                                                                    : wire::KernelArgument::OUTPUT);
    arg->set_index(index);
  }
  w.set_compile_seconds(a.compile_seconds);
  return w;
}

Artifact from_wire(const wire::Artifact &w) {
  Artifact a;
  a.candidate_id = w.candidate_id();
  a.workload_text = w.workload_text();
  a.workload_hash = w.workload_hash();
  a.target_json = w.target_json();
  a.code.object = w.object();
  for (auto &p : w.packs()) a.code.packs.push_back({p.symbol(), p.input(), p.bytes()});
  a.code.kernel = w.kernel_symbol();
  using Source = codegen::ObjectCode::Source;
  for (auto &arg : w.args())
    a.code.args.push_back({arg.source() == wire::KernelArgument::INPUT    ? Source::Input
                           : arg.source() == wire::KernelArgument::PACKED ? Source::Packed
                                                                          : Source::Output,
                           arg.index()});
  a.compile_seconds = w.compile_seconds();
  return a;
}

wire::RunOptions to_wire(const RunOptions &o, double best_seconds) {
  wire::RunOptions w;
  w.set_warmup(o.warmup);
  w.set_number(o.number);
  w.set_repeat(o.repeat);
  w.set_min_repeat_ms(o.min_repeat_ms);
  w.set_flush_cache(o.flush_cache);
  w.set_timeout_seconds(o.timeout_seconds);
  w.set_hopeless_ratio(o.hopeless_ratio);
  w.set_best_seconds(best_seconds);
  w.set_check(o.check);
  w.set_input_seed(o.input_seed);
  w.set_threads(o.threads);
  return w;
}

RunOptions from_wire(const wire::RunOptions &w) {
  RunOptions o;
  o.warmup = w.warmup();
  o.number = w.number();
  o.repeat = w.repeat();
  o.min_repeat_ms = w.min_repeat_ms();
  o.flush_cache = w.flush_cache();
  o.timeout_seconds = w.timeout_seconds();
  o.hopeless_ratio = w.hopeless_ratio();
  o.check = w.check();
  o.input_seed = w.input_seed();
  o.threads = w.threads();
  return o;
}

wire::RunReply to_wire(const RunResult &r) {
  wire::RunReply w;
  w.set_candidate_id(r.candidate_id);
  w.set_status(std::string(db::to_string(r.status)));
  w.set_message(r.message);
  for (double s : r.run_seconds) w.add_run_seconds(s);
  w.set_stopped_early(r.stopped_early);
  w.set_measured_on(r.measured_on);
  w.set_calls_per_repeat(r.calls_per_repeat);
  return w;
}

db::RecordStatus status_from_wire(const std::string &name, std::string &message) {
  if (auto s = db::parse_record_status(name)) return *s;
  message = "unknown status '" + name + "' from the worker" + (message.empty() ? "" : ": " + message);
  return db::RecordStatus::Invalid;
}

RunResult from_wire(const wire::RunReply &w) {
  RunResult r;
  r.candidate_id = w.candidate_id();
  r.message = w.message();
  r.status = status_from_wire(w.status(), r.message);
  r.run_seconds.assign(w.run_seconds().begin(), w.run_seconds().end());
  r.stopped_early = w.stopped_early();
  r.measured_on = w.measured_on();
  r.calls_per_repeat = w.calls_per_repeat();
  return r;
}

} // namespace tessel::measure::detail
