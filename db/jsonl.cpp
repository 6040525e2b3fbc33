// Interchange: JSON Lines export and import (format: db/FORMAT.md), merging
// one database into another, and the rescue file for records that could not
// be written before their database closed.
#include "db/detail.h"

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

namespace tessel::db {

namespace {

using json = nlohmann::ordered_json;
constexpr int kRecordFormatVersion = 1;
constexpr size_t kBatch = 1000; // records per transaction when importing or merging

json record_to_json(const Record &r, const std::optional<RunInfo> &run) {
  json j;
  j["format"] = "tessel-record";
  j["version"] = kRecordFormatVersion;
  j["workload"] = {{"key", r.workload_key}, {"hash", r.workload_hash}, {"text", r.workload_text}};
  j["target"] = {{"canonical", r.target.canonical},
                 {"compat", r.target.compat},
                 {"cpu_model", r.target.cpu_model},
                 {"threads", r.target.threads}};
  if (run)
    j["run"] = {{"uid", run->uid},
                {"host", run->host},
                {"tessel_version", run->tessel_version},
                {"llvm_version", run->llvm_version},
                {"started_at", run->started_at},
                {"ended_at", run->ended_at},
                {"config", run->config_json}};
  j["status"] = std::string(to_string(r.status));
  j["message"] = r.message;
  j["run_seconds"] = r.run_seconds;
  j["median_seconds"] = r.median_seconds;
  j["min_seconds"] = r.min_seconds;
  j["cv"] = r.cv;
  j["timestamp"] = r.timestamp;
  j["trace_version"] = r.trace_version;
  j["trace"] = r.trace_json; // a string: its bytes (and so the record's identity) survive the round trip
  return j;
}

// Reads typed fields of one line, remembering the first problem as "what is wrong".
class Fields {
public:
  explicit Fields(const json &root) : root_(root) {}
  const std::string &error() const { return error_; }
  bool ok() const { return error_.empty(); }

  const json *find(const char *object, const char *field) {
    const json *o = &root_;
    if (object) {
      auto it = root_.find(object);
      if (it == root_.end() || !it->is_object()) return fail(std::string("missing object \"") + object + "\"");
      o = &*it;
    }
    auto it = o->find(field);
    if (it == o->end()) return fail("missing field \"" + name(object, field) + "\"");
    return &*it;
  }
  std::string str(const char *object, const char *field) {
    const json *v = find(object, field);
    if (!v) return "";
    if (!v->is_string()) return fail("\"" + name(object, field) + "\" must be a string"), "";
    return v->get<std::string>();
  }
  int64_t integer(const char *object, const char *field) {
    const json *v = find(object, field);
    if (!v) return 0;
    if (!v->is_number_integer()) return fail("\"" + name(object, field) + "\" must be an integer"), 0;
    return v->get<int64_t>();
  }
  double number(const char *object, const char *field) {
    const json *v = find(object, field);
    if (!v) return 0;
    if (!v->is_number()) return fail("\"" + name(object, field) + "\" must be a number"), 0;
    return v->get<double>();
  }
  std::vector<double> numbers(const char *field) {
    const json *v = find(nullptr, field);
    std::vector<double> out;
    if (!v) return out;
    if (!v->is_array()) return fail(std::string("\"") + field + "\" must be a list of numbers"), out;
    for (auto &x : *v) {
      if (!x.is_number()) return fail(std::string("\"") + field + "\" must be a list of numbers"), out;
      out.push_back(x.get<double>());
    }
    return out;
  }

private:
  static std::string name(const char *object, const char *field) {
    return object ? std::string(object) + "." + field : std::string(field);
  }
  const json *fail(const std::string &why) {
    if (error_.empty()) error_ = why;
    return nullptr;
  }
  const json &root_;
  std::string error_;
};

// One line into a record (and its run, if it names one), or what is wrong with it.
Expected<std::pair<Record, std::optional<RunInfo>>> record_from_line(const std::string &line) {
  json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return make_error("not valid JSON");
  if (!j.is_object() || j.value("format", "") != "tessel-record")
    return make_error("not a Tessel record (needs \"format\": \"tessel-record\")");
  Fields f(j);
  int64_t version = f.integer(nullptr, "version");
  if (!f.ok()) return make_error(f.error());
  if (version > kRecordFormatVersion)
    return make_error("record format version " + std::to_string(version) + " is newer than this Tessel reads (" +
                      std::to_string(kRecordFormatVersion) + "); upgrade Tessel");
  if (version < 1) return make_error("record format version " + std::to_string(version) + " does not exist");
  Record r;
  r.workload_key = f.str("workload", "key");
  r.workload_hash = f.str("workload", "hash");
  r.workload_text = f.str("workload", "text");
  r.target.canonical = f.str("target", "canonical");
  r.target.compat = f.str("target", "compat");
  r.target.cpu_model = f.str("target", "cpu_model");
  r.target.threads = int(f.integer("target", "threads"));
  std::string status = f.str(nullptr, "status");
  r.message = f.str(nullptr, "message");
  r.run_seconds = f.numbers("run_seconds");
  r.median_seconds = f.number(nullptr, "median_seconds");
  r.min_seconds = f.number(nullptr, "min_seconds");
  r.cv = f.number(nullptr, "cv");
  r.timestamp = f.integer(nullptr, "timestamp");
  r.trace_version = int(f.integer(nullptr, "trace_version"));
  r.trace_json = f.str(nullptr, "trace");
  std::optional<RunInfo> run;
  if (j.contains("run")) {
    RunInfo info;
    info.uid = f.str("run", "uid");
    info.host = f.str("run", "host");
    info.tessel_version = f.str("run", "tessel_version");
    info.llvm_version = f.str("run", "llvm_version");
    info.started_at = f.integer("run", "started_at");
    info.ended_at = f.integer("run", "ended_at");
    info.config_json = f.str("run", "config");
    if (f.ok() && info.uid.empty()) return make_error("\"run.uid\" is empty");
    run = std::move(info);
  }
  if (!f.ok()) return make_error(f.error());
  auto parsed = parse_record_status(status);
  if (!parsed)
    return make_error("unknown status \"" + status +
                      "\" (one of ok, compile-error, runtime-error, timeout, wrong-result, invalid)");
  r.status = *parsed;
  return std::make_pair(std::move(r), std::move(run));
}

// Maps run ids of one database (or uids of a file) to runs of another, creating them once.
class RunMapper {
public:
  explicit RunMapper(Database &into) : into_(into) {}
  int64_t map(const RunInfo &info) {
    auto it = by_uid_.find(info.uid);
    if (it != by_uid_.end()) return it->second;
    auto id = into_.begin_run(info);
    return by_uid_[info.uid] = id ? *id : 0; // a run that cannot be written: the record still is
  }

private:
  Database &into_;
  std::map<std::string, int64_t> by_uid_;
};

} // namespace

namespace detail {

JsonlWriter::JsonlWriter(std::string path, RunLookup runs)
    : path_(std::move(path)), tmp_path_(path_ + ".tmp-" + std::to_string(getpid())), runs_(std::move(runs)) {}

JsonlWriter::~JsonlWriter() {
  if (!file_ || file_ == stdout) return;
  std::fclose(file_);
  std::remove(tmp_path_.c_str());
}

Status JsonlWriter::open() {
  file_ = path_ == "-" ? stdout : std::fopen(tmp_path_.c_str(), "w");
  if (!file_) return Status::error("cannot write " + path_ + ": " + std::strerror(errno));
  return Status::ok();
}

Status JsonlWriter::write(const Record &r) {
  std::optional<RunInfo> run;
  if (r.run_id != 0) {
    auto it = run_cache_.find(r.run_id);
    if (it == run_cache_.end()) it = run_cache_.emplace(r.run_id, runs_ ? runs_(r.run_id) : std::nullopt).first;
    run = it->second;
  }
  std::string line = record_to_json(r, run).dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size())
    return Status::error("writing " + path_ + " failed: " + std::strerror(errno));
  return Status::ok();
}

Status JsonlWriter::finish() {
  if (file_ == stdout) {
    file_ = nullptr;
    if (std::fflush(stdout) != 0)
      return Status::error(std::string("writing standard output failed: ") + std::strerror(errno));
    return Status::ok();
  }
  bool ok = std::fflush(file_) == 0 && fsync(fileno(file_)) == 0;
  int err = errno;
  ok = std::fclose(file_) == 0 && ok;
  file_ = nullptr;
  if (!ok) {
    std::remove(tmp_path_.c_str());
    return Status::error("writing " + path_ + " failed: " + std::strerror(err));
  }
  if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    err = errno;
    std::remove(tmp_path_.c_str());
    return Status::error("cannot write " + path_ + ": " + std::strerror(err));
  }
  return Status::ok();
}

void rescue_pending(const std::string &db_path, const std::vector<Record> &pending,
                    const JsonlWriter::RunLookup &runs) {
  std::string suffix = "pending-" + std::to_string(getpid()) + "-" + std::to_string(unix_now()) + ".jsonl";
  std::vector<std::string> candidates = {db_path + "." + suffix,
                                         (std::filesystem::temp_directory_path() / ("tessel-" + suffix)).string()};
  std::string errors;
  for (auto &path : candidates) {
    JsonlWriter w(path, runs);
    Status st = w.open();
    for (size_t i = 0; st && i < pending.size(); ++i) st = w.write(pending[i]);
    if (st) st = w.finish();
    if (st) {
      std::fprintf(stderr,
                   "tessel: %zu records could not be written to %s before it closed; saved them to %s "
                   "(import_jsonl brings them back)\n",
                   pending.size(), db_path.c_str(), path.c_str());
      return;
    }
    errors += "; " + st.message();
  }
  std::fprintf(stderr, "tessel: %zu records could not be written to %s and no rescue file could be written%s\n",
               pending.size(), db_path.c_str(), errors.c_str());
}

} // namespace detail

Expected<ExportCounts> export_jsonl(const Database &db, const std::string &path, const Progress &progress) {
  int64_t total = 0;
  if (progress) {
    auto stats = db.stats();
    total = stats ? stats->records : 0;
  }
  detail::JsonlWriter w(path, [&](int64_t id) -> std::optional<RunInfo> {
    auto r = db.run(id);
    return r ? std::optional<RunInfo>(*r) : std::nullopt;
  });
  if (auto st = w.open(); !st) return make_error(st.message());
  ExportCounts counts;
  Status written = Status::ok();
  Status walked = db.for_each([&](const Record &r) {
    written = w.write(r);
    counts.exported += written.is_ok();
    if (progress && total > 0 && counts.exported % 4096 == 0) progress(double(counts.exported) / double(total));
    return written.is_ok();
  });
  if (!walked) return make_error("exporting " + db.describe() + ": " + walked.message());
  if (!written) return make_error(written.message());
  for (auto &r : db.pending()) {
    if (auto st = w.write(r); !st) return make_error(st.message());
    ++counts.exported, ++counts.pending_included;
  }
  if (auto st = w.finish(); !st) return make_error(st.message());
  return counts;
}

Expected<ImportCounts> import_jsonl(Database &db, const std::string &path, const Progress &progress) {
  std::ifstream file;
  if (path != "-") {
    file.open(path, std::ios::binary);
    if (!file) return make_error("cannot read " + path + ": " + std::strerror(errno));
  }
  std::istream &in = path == "-" ? std::cin : file;
  std::error_code size_error;
  double bytes = path == "-" ? 0 : double(std::filesystem::file_size(path, size_error));
  double read = 0;
  ImportCounts counts;
  RunMapper runs(db);
  std::vector<Record> batch;
  int64_t line_no = 0;
  auto flush = [&]() -> Status {
    CommitCounts c;
    Status st = db.commit(batch, &c);
    batch.clear();
    if (!st)
      return Status::error("import of " + path + " stopped at line " + std::to_string(line_no) + " (" +
                           std::to_string(counts.imported) + " records imported before): " + st.message());
    counts.imported += c.stored, counts.duplicates += c.duplicates;
    return Status::ok();
  };
  std::string line;
  while (std::getline(in, line)) {
    ++line_no;
    read += double(line.size() + 1);
    if (progress && bytes > 0 && line_no % 4096 == 0) progress(std::min(1.0, read / bytes));
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    auto parsed = [&]() -> Expected<std::pair<Record, std::optional<RunInfo>>> {
      try {
        return record_from_line(line);
      } catch (const std::exception &e) {
        return make_error(e.what());
      }
    }();
    Status valid = parsed ? detail::validate(parsed->first, "line " + std::to_string(line_no)) : Status::ok();
    if (!parsed || !valid) {
      ++counts.failed;
      counts.errors.push_back(parsed ? valid.message() : "line " + std::to_string(line_no) + ": " + parsed.error());
      continue;
    }
    Record r = std::move(parsed->first);
    if (parsed->second) r.run_id = runs.map(*parsed->second);
    batch.push_back(std::move(r));
    if (batch.size() >= kBatch)
      if (auto st = flush(); !st) return make_error(st.message());
  }
  if (!batch.empty())
    if (auto st = flush(); !st) return make_error(st.message());
  return counts;
}

Expected<MergeCounts> merge(Database &into, const Database &from, const Progress &progress) {
  MergeCounts counts;
  int64_t total = 0;
  if (progress) {
    auto stats = from.stats();
    total = stats ? stats->records : 0;
  }
  RunMapper runs(into);
  std::map<int64_t, int64_t> run_ids;
  std::vector<Record> batch;
  Status failed = Status::ok();
  auto flush = [&] {
    CommitCounts c;
    failed = into.commit(batch, &c);
    batch.clear();
    counts.added += c.stored, counts.duplicates += c.duplicates;
    return failed.is_ok();
  };
  Status walked = from.for_each([&](const Record &r) {
    ++counts.read;
    if (progress && total > 0 && counts.read % 4096 == 0) progress(double(counts.read) / double(total));
    Record copy = r;
    copy.id = 0;
    if (r.run_id != 0) {
      auto it = run_ids.find(r.run_id);
      if (it == run_ids.end()) {
        auto info = from.run(r.run_id);
        it = run_ids.emplace(r.run_id, info ? runs.map(*info) : 0).first;
      }
      copy.run_id = it->second;
    }
    batch.push_back(std::move(copy));
    return batch.size() < kBatch || flush();
  });
  if (walked && failed && !batch.empty()) flush();
  if (!walked) return make_error("merging " + from.describe() + ": " + walked.message());
  if (!failed)
    return make_error("merging " + from.describe() + " into " + into.describe() + " stopped after " +
                      std::to_string(counts.read) + " records: " + failed.message());
  return counts;
}

} // namespace tessel::db
