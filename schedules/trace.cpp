#include "schedules/trace.h"

#include "schedules/primitives.h"

#include <nlohmann/json.hpp>

#include <map>

namespace tessel::sched {

namespace {

using json = nlohmann::ordered_json;

// The named fields of each primitive, in Step::ints order. A field ending in
// "[]" takes the rest of the integers as a list. `str` names the string field.
struct OpFields {
  std::vector<std::string> ints;
  std::string str;
};

const std::map<std::string, OpFields> &op_fields() {
  static const std::map<std::string, OpFields> m = {
      {"split", {{"loop", "factor"}, ""}},
      {"split_exact", {{"loop", "factor"}, ""}},
      {"split_nparts", {{"loop", "nparts"}, ""}},
      {"fuse", {{"outer", "inner"}, ""}},
      {"reorder", {{"order[]"}, ""}},
      {"parallel", {{"loop"}, ""}},
      {"vectorize", {{"loop"}, ""}},
      {"unroll", {{"loop"}, ""}},
      {"bind", {{"loop"}, "thread"}},
      {"compute_inline", {{}, ""}},
      {"compute_at", {{"loop"}, "at"}},
      {"reverse_compute_at", {{"loop"}, "producer"}},
      {"auto_unroll", {{"loop", "max_step"}, ""}},
      {"rfactor", {{"loop"}, ""}},
      {"rfactor_last", {{"loop"}, ""}},
      {"tensorize", {{"loop"}, "intrinsic"}},
      {"cache_write", {{}, "scope"}},
      {"cache_write_layout", {{"dim", "block", "perm[]"}, "scope"}},
      {"cache_read", {{}, "consumer_scope"}},
      {"storage_pad", {{"elements"}, ""}},
      {"transform_layout", {{"dim", "block", "perm[]"}, ""}},
  };
  return m;
}

} // namespace

std::string trace_to_json(const Schedule &s) {
  json steps = json::array();
  for (auto &st : s.trace) {
    json j;
    j["op"] = st.op;
    j["stage"] = st.stage;
    const OpFields &f = op_fields().at(st.op);
    size_t i = 0;
    for (auto &name : f.ints) {
      if (name.size() > 2 && name.substr(name.size() - 2) == "[]") {
        j[name.substr(0, name.size() - 2)] = std::vector<int64_t>(st.ints.begin() + long(i), st.ints.end());
        i = st.ints.size();
      } else {
        j[name] = st.ints.at(i++);
      }
    }
    if (f.str == "consumer_scope") {
      auto colon = st.str.rfind(':');
      j["consumer"] = st.str.substr(0, colon);
      j["scope"] = st.str.substr(colon + 1);
    } else if (!f.str.empty()) {
      j[f.str] = st.str;
    }
    steps.push_back(j);
  }
  // One step per line: diffs of traces stay readable.
  json workload = {{"key", s.source.key}, {"hash", s.source.hash_hex()}};
  std::string out = "{\n \"format\": \"tessel-trace\",\n \"version\": " + std::to_string(kTraceFormatVersion) +
                    ",\n \"workload\": " + workload.dump() + ",\n \"steps\": [";
  for (size_t i = 0; i < steps.size(); ++i) out += (i ? ",\n  " : "\n  ") + steps[i].dump();
  out += steps.empty() ? "]\n}\n" : "\n ]\n}\n";
  return out;
}

Expected<ParsedTrace> parse_trace(std::string_view text) {
  json doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return make_error("trace: not valid JSON");
  if (!doc.is_object() || doc.value("format", "") != "tessel-trace")
    return make_error("trace: missing \"format\": \"tessel-trace\" (is this a Tessel trace?)");
  if (!doc.contains("version") || !doc["version"].is_number_integer())
    return make_error("trace: missing integer \"version\"");
  ParsedTrace t;
  t.version = doc["version"].get<int>();
  if (t.version > kTraceFormatVersion)
    return make_error("trace: format version " + std::to_string(t.version) +
                      " was written by a newer Tessel; this "
                      "build reads version " +
                      std::to_string(kTraceFormatVersion) + " (upgrade Tessel)");
  if (t.version < 1)
    return make_error("trace: format version " + std::to_string(t.version) +
                      " is not supported (the first released "
                      "format is 1); re-tune to produce a current trace");
  // Migrations from older versions go here, one step at a time, as formats evolve.
  if (doc.contains("workload") && doc["workload"].is_object()) {
    t.workload_key = doc["workload"].value("key", "");
    t.workload_hash = doc["workload"].value("hash", "");
  }
  if (!doc.contains("steps") || !doc["steps"].is_array()) return make_error("trace: missing array \"steps\"");
  int n = 0;
  for (auto &j : doc["steps"]) {
    ++n;
    std::string where = "trace: step " + std::to_string(n);
    if (!j.is_object() || !j.contains("op") || !j["op"].is_string())
      return make_error(where + ": needs a string \"op\"");
    Step st;
    st.op = j["op"].get<std::string>();
    auto it = op_fields().find(st.op);
    if (it == op_fields().end()) return make_error(where + ": unknown primitive \"" + st.op + "\"");
    if (!j.contains("stage") || !j["stage"].is_string())
      return make_error(where + " (" + st.op + "): needs a string \"stage\"");
    st.stage = j["stage"].get<std::string>();
    where += " (" + st.op + " on " + st.stage + ")";
    for (auto &name : it->second.ints) {
      bool list = name.size() > 2 && name.substr(name.size() - 2) == "[]";
      std::string key = list ? name.substr(0, name.size() - 2) : name;
      if (!j.contains(key)) return make_error(where + ": missing field \"" + key + "\"");
      if (list) {
        if (!j[key].is_array()) return make_error(where + ": \"" + key + "\" must be a list of integers");
        for (auto &v : j[key]) {
          if (!v.is_number_integer()) return make_error(where + ": \"" + key + "\" must be a list of integers");
          st.ints.push_back(v.get<int64_t>());
        }
      } else {
        if (!j[key].is_number_integer()) return make_error(where + ": \"" + key + "\" must be an integer");
        st.ints.push_back(j[key].get<int64_t>());
      }
    }
    const std::string &sf = it->second.str;
    if (sf == "consumer_scope") {
      if (!j.contains("consumer") || !j.contains("scope") || !j["consumer"].is_string() || !j["scope"].is_string())
        return make_error(where + ": needs strings \"consumer\" and \"scope\"");
      st.str = j["consumer"].get<std::string>() + ":" + j["scope"].get<std::string>();
    } else if (!sf.empty()) {
      if (!j.contains(sf) || !j[sf].is_string()) return make_error(where + ": missing string field \"" + sf + "\"");
      st.str = j[sf].get<std::string>();
    }
    t.steps.push_back(std::move(st));
  }
  return t;
}

Expected<Schedule> replay(const te::Workload &w, const std::vector<Step> &steps) {
  Schedule s = default_schedule(w);
  for (size_t i = 0; i < steps.size(); ++i) {
    Status st = apply_step(s, steps[i]);
    if (!st)
      return make_error("step " + std::to_string(i + 1) + " (" + steps[i].op + " on " + steps[i].stage +
                        "): " + st.message());
  }
  return s;
}

Expected<Schedule> replay_json(const te::Workload &w, std::string_view json_text) {
  auto t = parse_trace(json_text);
  if (!t) return make_error(t.error());
  if (!t->workload_hash.empty() && t->workload_hash != w.hash_hex())
    return make_error("trace was made for workload " + t->workload_key + " (hash " + t->workload_hash + "), not " +
                      w.key + " (hash " + w.hash_hex() + ")");
  return replay(w, t->steps);
}

} // namespace tessel::sched
