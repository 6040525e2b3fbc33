// Shared by the two Database implementations and the interchange code; not
// part of the interface (db/database.h).
#pragma once

#include "db/database.h"

#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace tessel::db::detail {

int64_t unix_now();

// The dedup identity (db/FORMAT.md): "<workload hash>:<32 hex digits of MurmurHash3 x64
// 128 over the length-prefixed identity fields>".
std::string content_hash(const Record &r);
// The same, with run_seconds already formatted (format_seconds) and the median computed.
std::string content_hash(const Record &r, std::string_view seconds_json, double median);
// median/min/cv from run_seconds (when there are any) and the timestamp (when 0).
void fill_derived(Record &r, int64_t now);
// Why the record cannot be stored, or ok. `where` prefixes the message ("record 3 of 64").
Status validate(const Record &r, const std::string &where);
// The first reason a batch cannot be stored in `db` ("record 3 of 64: ..."), or ok.
// `has_run` says whether a non-zero run_id names one of db's tuning runs.
Status validate_batch(const std::vector<Record> &batch, const std::string &db,
                      const std::function<bool(int64_t)> &has_run);

// run_seconds as the JSON array stored in the records table, and back.
std::string format_seconds(const std::vector<double> &seconds);
std::optional<std::vector<double>> parse_seconds(std::string_view text);
std::string format_double(double v); // shortest text that reads back as the same double

// Flops per evaluation of a workload's text form; 0 when it does not parse (stale records are kept).
double flops_of(const std::string &workload_text);

// "<db>: <reason>: N records kept in memory (...)" for a batch that could not be written.
std::string kept_message(const std::string &db, const std::string &reason, size_t n);

// JSON Lines, written to `<path>.tmp-<pid>` and renamed on finish(), so a reader
// never sees half an export; "-" writes standard output.
class JsonlWriter {
public:
  using RunLookup = std::function<std::optional<RunInfo>(int64_t run_id)>;
  JsonlWriter(std::string path, RunLookup runs);
  ~JsonlWriter();
  Status open();
  Status write(const Record &r);
  Status finish();

private:
  std::string path_, tmp_path_;
  RunLookup runs_;
  std::FILE *file_ = nullptr;
  std::map<int64_t, std::optional<RunInfo>> run_cache_;
};

// Writes records that could not reach their database to a rescue file next to it
// (or in the temp directory) and says where on stderr. Used at close.
void rescue_pending(const std::string &db_path, const std::vector<Record> &pending, const JsonlWriter::RunLookup &runs);

} // namespace tessel::db::detail
