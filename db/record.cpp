// Record values: status names, derived timing figures, validation, and the
// content hash that makes identical records one (db/FORMAT.md, "Identity").
#include "db/detail.h"
#include "support/stats.h"
#include "te/text.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>

namespace tessel::db {

namespace {

struct StatusName {
  RecordStatus status;
  std::string_view name;
};
constexpr StatusName kStatusNames[] = {
    {RecordStatus::Ok, "ok"},
    {RecordStatus::CompileError, "compile-error"},
    {RecordStatus::RuntimeError, "runtime-error"},
    {RecordStatus::Timeout, "timeout"},
    {RecordStatus::WrongResult, "wrong-result"},
    {RecordStatus::Invalid, "invalid"},
};

// MurmurHash3 x64 128 (Austin Appleby, public domain), seed 0: fast enough to hash
// every record on commit, and reproducible elsewhere (Python: mmh3.hash128).
uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
uint64_t fmix(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ull;
  k ^= k >> 33;
  return k;
}
std::string murmur3_128_hex(std::string_view data) {
  const auto *bytes = reinterpret_cast<const uint8_t *>(data.data());
  const size_t len = data.size(), nblocks = len / 16;
  uint64_t h1 = 0, h2 = 0;
  const uint64_t c1 = 0x87c37b91114253d5ull, c2 = 0x4cf5ad432745937full;
  for (size_t i = 0; i < nblocks; ++i) {
    uint64_t k1, k2;
    std::memcpy(&k1, bytes + i * 16, 8); // little-endian hosts only, as Tessel's targets are
    std::memcpy(&k2, bytes + i * 16 + 8, 8);
    k1 *= c1, k1 = rotl(k1, 31), k1 *= c2, h1 ^= k1;
    h1 = rotl(h1, 27), h1 += h2, h1 = h1 * 5 + 0x52dce729;
    k2 *= c2, k2 = rotl(k2, 33), k2 *= c1, h2 ^= k2;
    h2 = rotl(h2, 31), h2 += h1, h2 = h2 * 5 + 0x38495ab5;
  }
  const uint8_t *tail = bytes + nblocks * 16;
  uint64_t k1 = 0, k2 = 0;
  switch (len & 15) {
  case 15: k2 ^= uint64_t(tail[14]) << 48; [[fallthrough]];
  case 14: k2 ^= uint64_t(tail[13]) << 40; [[fallthrough]];
  case 13: k2 ^= uint64_t(tail[12]) << 32; [[fallthrough]];
  case 12: k2 ^= uint64_t(tail[11]) << 24; [[fallthrough]];
  case 11: k2 ^= uint64_t(tail[10]) << 16; [[fallthrough]];
  case 10: k2 ^= uint64_t(tail[9]) << 8; [[fallthrough]];
  case 9:
    k2 ^= uint64_t(tail[8]);
    k2 *= c2, k2 = rotl(k2, 33), k2 *= c1, h2 ^= k2;
    [[fallthrough]];
  case 8: k1 ^= uint64_t(tail[7]) << 56; [[fallthrough]];
  case 7: k1 ^= uint64_t(tail[6]) << 48; [[fallthrough]];
  case 6: k1 ^= uint64_t(tail[5]) << 40; [[fallthrough]];
  case 5: k1 ^= uint64_t(tail[4]) << 32; [[fallthrough]];
  case 4: k1 ^= uint64_t(tail[3]) << 24; [[fallthrough]];
  case 3: k1 ^= uint64_t(tail[2]) << 16; [[fallthrough]];
  case 2: k1 ^= uint64_t(tail[1]) << 8; [[fallthrough]];
  case 1: k1 ^= uint64_t(tail[0]); k1 *= c1, k1 = rotl(k1, 31), k1 *= c2, h1 ^= k1;
  }
  h1 ^= len, h2 ^= len;
  h1 += h2, h2 += h1;
  h1 = fmix(h1), h2 = fmix(h2);
  h1 += h2, h2 += h1;
  char out[33];
  std::snprintf(out, sizeof out, "%016llx%016llx", (unsigned long long)h1, (unsigned long long)h2);
  return out;
}

bool is_hash_hex(const std::string &s) {
  return s.size() == 16 &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

} // namespace

std::string_view to_string(RecordStatus s) {
  for (auto &n : kStatusNames)
    if (n.status == s) return n.name;
  return "invalid";
}

std::optional<RecordStatus> parse_record_status(std::string_view s) {
  for (auto &n : kStatusNames)
    if (n.name == s) return n.status;
  return std::nullopt;
}

Expected<Record> Database::best(const std::string &workload_hash, const TargetKey &target, TargetMatch match) const {
  auto top = top_k(workload_hash, target, 1, match);
  if (!top) return make_error(top.error());
  if (top->empty())
    return make_error("no ok record for workload hash " + workload_hash + " on target " + short_target(target) +
                      " in " + describe());
  return std::move(top->front());
}

namespace detail {

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string format_double(double v) {
  // Shortest round-trip digits; fixed notation where people read it easily (1 us .. 1e15).
  char buf[400];
  double a = std::fabs(v);
  auto format = a == 0 || (a >= 1e-6 && a < 1e15) ? std::chars_format::fixed : std::chars_format::scientific;
  auto res = std::to_chars(buf, buf + sizeof buf, v, format);
  return std::string(buf, res.ptr);
}

std::string format_seconds(const std::vector<double> &seconds) {
  std::string out = "[";
  for (size_t i = 0; i < seconds.size(); ++i) out += (i ? "," : "") + format_double(seconds[i]);
  return out + "]";
}

std::optional<std::vector<double>> parse_seconds(std::string_view text) {
  std::vector<double> out;
  size_t i = 0;
  auto skip_space = [&] {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\n' || text[i] == '\t')) ++i;
  };
  skip_space();
  if (i >= text.size() || text[i] != '[') return std::nullopt;
  ++i;
  skip_space();
  if (i < text.size() && text[i] == ']') return out;
  while (i < text.size()) {
    skip_space();
    double v = 0;
    auto res = std::from_chars(text.data() + i, text.data() + text.size(), v);
    if (res.ec != std::errc()) return std::nullopt;
    out.push_back(v);
    i = size_t(res.ptr - text.data());
    skip_space();
    if (i < text.size() && text[i] == ',') {
      ++i;
      continue;
    }
    if (i < text.size() && text[i] == ']') return out;
    return std::nullopt;
  }
  return std::nullopt;
}

std::string content_hash(const Record &r) { return content_hash(r, format_seconds(r.run_seconds), r.median_seconds); }

std::string content_hash(const Record &r, std::string_view seconds_json, double median) {
  // Length-prefixed fields: no separator can occur inside one and shift the others.
  std::string identity;
  identity.reserve(r.trace_json.size() + r.target.canonical.size() + r.message.size() + seconds_json.size() + 128);
  identity = "tessel-record-identity-1";
  auto add = [&](std::string_view field) {
    identity += '|' + std::to_string(field.size()) + ':';
    identity.append(field);
  };
  add(r.workload_hash);
  add(r.target.canonical);
  add(r.target.cpu_model);
  add(std::to_string(r.trace_version));
  add(r.trace_json);
  add(to_string(r.status));
  add(r.message);
  add(seconds_json);
  add(format_double(median));
  // The workload hash first: a batch of one workload's records then lands in one region of
  // the unique index instead of 64 random pages (write amplification at millions of records).
  return r.workload_hash + ":" + murmur3_128_hex(identity);
}

void fill_derived(Record &r, int64_t now) {
  if (!r.run_seconds.empty()) {
    std::vector<double> sorted = r.run_seconds;
    std::sort(sorted.begin(), sorted.end()); // the cv summed in this order, as stored records were
    r.median_seconds = median(sorted);
    r.min_seconds = sorted.front();
    r.cv = coefficient_of_variation(sorted);
  }
  if (r.timestamp == 0) r.timestamp = now;
}

Status validate(const Record &r, const std::string &where) {
  auto bad = [&](const std::string &why) { return Status::error(where + ": " + why); };
  if (!is_hash_hex(r.workload_hash))
    return bad("workload_hash '" + r.workload_hash + "' is not 16 lowercase hex digits (Workload::hash_hex())");
  if (r.workload_key.empty()) return bad("empty workload_key");
  if (r.workload_text.empty()) return bad("empty workload_text (te::to_text of the workload)");
  if (r.target.canonical.empty() || r.target.compat.empty()) return bad("target key without canonical/compat form");
  if (r.trace_json.empty()) return bad("empty trace_json");
  if (r.trace_version < 1) return bad("trace_version " + std::to_string(r.trace_version) + " (the first is 1)");
  for (double v : r.run_seconds)
    if (!std::isfinite(v) || v < 0) return bad("run_seconds holds " + format_double(v));
  for (double v : {r.median_seconds, r.min_seconds, r.cv})
    if (!std::isfinite(v) || v < 0) return bad("median/min/cv holds " + format_double(v));
  if (r.status == RecordStatus::Ok && r.run_seconds.empty() && r.median_seconds <= 0)
    return bad("an ok record needs run_seconds (or a median)");
  return Status::ok();
}

Status validate_batch(const std::vector<Record> &batch, const std::string &db,
                      const std::function<bool(int64_t)> &has_run) {
  for (size_t i = 0; i < batch.size(); ++i) {
    std::string where = "record " + std::to_string(i + 1) + " of " + std::to_string(batch.size());
    Status st = validate(batch[i], where);
    if (st && batch[i].run_id != 0 && !has_run(batch[i].run_id))
      st = Status::error(where + ": run_id " + std::to_string(batch[i].run_id) + " is not a tuning run of " + db +
                         " (use an id from begin_run(), or 0)");
    if (!st) return Status::error(st.message() + "; nothing of this batch was committed");
  }
  return Status::ok();
}

double flops_of(const std::string &workload_text) {
  try {
    auto w = te::parse_workload(workload_text, "record");
    return w ? w->flops() : 0.0;
  } catch (...) {
    return 0.0;
  }
}

std::string kept_message(const std::string &db, const std::string &reason, size_t n) {
  return "database " + db + " " + reason + ": " + std::to_string(n) +
         " records kept in memory (Database::pending()); commit again once it can be written, or export_jsonl() "
         "them";
}

} // namespace detail

std::string short_target(const TargetKey &t) {
  auto pos = t.canonical.find(" isa=");
  return pos == std::string::npos ? t.canonical : t.canonical.substr(0, pos);
}

} // namespace tessel::db
