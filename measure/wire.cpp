#include "measure/wire.h"

namespace tessel::measure::detail {

namespace {

wire::KernelArgument::Source to_wire(codegen::ObjectCode::Source s) {
  return s == codegen::ObjectCode::Source::Input    ? wire::KernelArgument::INPUT
         : s == codegen::ObjectCode::Source::Packed ? wire::KernelArgument::PACKED
                                                    : wire::KernelArgument::OUTPUT;
}

codegen::ObjectCode::Source from_wire(wire::KernelArgument::Source s) {
  using Source = codegen::ObjectCode::Source;
  return s == wire::KernelArgument::INPUT    ? Source::Input
         : s == wire::KernelArgument::PACKED ? Source::Packed
                                             : Source::Output;
}

} // namespace

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
    arg->set_source(to_wire(source));
    arg->set_index(index);
  }
  w.set_compile_seconds(a.compile_seconds);
  w.set_cubin(a.cuda.cubin);
  for (auto &k : a.cuda.kernels) {
    auto *kw = w.add_cuda_kernels();
    kw->set_name(k.name);
    for (int d = 0; d < 3; ++d) kw->add_grid(k.grid[size_t(d)]), kw->add_block(k.block[size_t(d)]);
    kw->set_shared_bytes(k.shared_bytes);
    for (int p : k.params) kw->add_params(p);
    kw->set_registers(k.registers);
    kw->set_local_bytes(k.local_bytes);
  }
  for (int64_t b : a.cuda.workspace_bytes) w.add_cuda_workspace_bytes(b);
  for (auto [source, index] : a.cuda.args) {
    auto *arg = w.add_cuda_args();
    arg->set_source(to_wire(source));
    arg->set_index(index);
  }
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
  for (auto &arg : w.args()) a.code.args.push_back({from_wire(arg.source()), arg.index()});
  a.compile_seconds = w.compile_seconds();
  a.cuda.cubin = w.cubin();
  for (auto &kw : w.cuda_kernels()) {
    codegen::CudaCode::Kernel k;
    k.name = kw.name();
    for (int d = 0; d < 3 && d < kw.grid_size() && d < kw.block_size(); ++d)
      k.grid[size_t(d)] = kw.grid(d), k.block[size_t(d)] = kw.block(d);
    k.shared_bytes = kw.shared_bytes();
    k.params.assign(kw.params().begin(), kw.params().end());
    k.registers = kw.registers();
    k.local_bytes = kw.local_bytes();
    a.cuda.kernels.push_back(k);
  }
  a.cuda.workspace_bytes.assign(w.cuda_workspace_bytes().begin(), w.cuda_workspace_bytes().end());
  for (auto &arg : w.cuda_args()) a.cuda.args.push_back({from_wire(arg.source()), arg.index()});
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
