#include "search/report.h"

#include "schedules/trace.h"
#include "te/text.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace tessel::search {

namespace {

std::string escape(const std::string &s) {
  std::string out;
  for (char c : s) {
    switch (c) {
    case '&': out += "&amp;"; break;
    case '<': out += "&lt;"; break;
    case '>': out += "&gt;"; break;
    case '"': out += "&quot;"; break;
    default: out += c;
    }
  }
  return out;
}

std::string num(double v, const char *f = "%.2f") {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// A line (or scatter) plot: x/y pairs, axes with their ranges, a title.
std::string svg_plot(const std::string &title, const std::string &xlabel, const std::string &ylabel,
                     const std::vector<std::pair<double, double>> &points, bool scatter) {
  const double w = 420, h = 240, left = 56, right = 12, top = 28, bottom = 40;
  double xmax = 0, ymax = 0;
  for (auto &[x, y] : points) xmax = std::max(xmax, x), ymax = std::max(ymax, y);
  if (xmax <= 0) xmax = 1;
  if (ymax <= 0) ymax = 1;
  auto X = [&](double x) { return left + x / xmax * (w - left - right); };
  auto Y = [&](double y) { return h - bottom - y / ymax * (h - top - bottom); };
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << w << "\" height=\"" << h << "\" class=\"plot\">"
    << "<title>" << escape(title) << "</title>"
    << "<text x=\"" << left << "\" y=\"18\" class=\"t\">" << escape(title) << "</text>"
    << "<line x1=\"" << left << "\" y1=\"" << Y(0) << "\" x2=\"" << X(xmax) << "\" y2=\"" << Y(0) << "\" class=\"ax\"/>"
    << "<line x1=\"" << left << "\" y1=\"" << Y(0) << "\" x2=\"" << left << "\" y2=\"" << Y(ymax) << "\" class=\"ax\"/>"
    << "<text x=\"" << left - 4 << "\" y=\"" << Y(ymax) + 4 << "\" class=\"l\" text-anchor=\"end\">"
    << num(ymax, "%.3g") << "</text>"
    << "<text x=\"" << left - 4 << "\" y=\"" << Y(0) << "\" class=\"l\" text-anchor=\"end\">0</text>"
    << "<text x=\"" << X(xmax) << "\" y=\"" << h - bottom + 14 << "\" class=\"l\" text-anchor=\"end\">"
    << num(xmax, "%.3g") << "</text>"
    << "<text x=\"" << (left + w - right) / 2 << "\" y=\"" << h - 8 << "\" class=\"l\" text-anchor=\"middle\">"
    << escape(xlabel) << "</text>"
    << "<text x=\"12\" y=\"" << (top + h - bottom) / 2 << "\" class=\"l\" transform=\"rotate(-90 12 "
    << (top + h - bottom) / 2 << ")\" text-anchor=\"middle\">" << escape(ylabel) << "</text>";
  if (scatter) {
    for (auto &[x, y] : points)
      s << "<circle cx=\"" << num(X(x)) << "\" cy=\"" << num(Y(y)) << "\" r=\"2.5\" class=\"pt\"/>";
  } else if (!points.empty()) {
    s << "<polyline class=\"ln\" points=\"";
    for (auto &[x, y] : points) s << num(X(x)) << "," << num(Y(y)) << " ";
    s << "\"/>";
  }
  s << "</svg>";
  return s.str();
}

std::string gflops(double flops, double seconds) { return seconds > 0 ? num(flops / seconds * 1e-9) : "&#8211;"; }

} // namespace

std::string html_report(const TuneReport &r) {
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><title>Tessel tuning report</title>\n"
    << "<style>body{font:14px sans-serif;margin:2em;max-width:1000px}table{border-collapse:collapse}"
       "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
       ".plot{margin:4px;border:1px solid #eee}.ax{stroke:#444}.ln{fill:none;stroke:#1f77b4;stroke-width:2}"
       ".pt{fill:#d62728;opacity:.6}.t{font-weight:bold}.l{font-size:11px}pre{background:#f6f6f6;padding:8px;"
       "overflow:auto}</style></head><body>\n"
    << "<h1>Tessel tuning report</h1>\n<p>Target: <code>" << escape(r.target)
    << "</code>. Cost model: " << escape(r.cost_model.empty() ? "n/a" : r.cost_model) << ".";
  if (r.total_seconds > 0) h << " Tuning took " << num(r.total_seconds, "%.1f") << " s.";
  h << "</p>\n<h2>Tasks</h2>\n<table><tr><th>task</th><th>trials</th><th>default GFLOP/s</th><th>tuned GFLOP/s</th>"
       "<th>speed-up</th><th>single-shot best GFLOP/s</th><th>machine speed while tuning</th><th>failed candidates</th>"
       "</tr>\n";
  for (auto &t : r.tasks) {
    h << "<tr><td>" << escape(t.name) << "</td><td>" << t.trials + t.resumed << "</td><td>"
      << gflops(t.flops, t.default_seconds) << "</td><td>" << gflops(t.flops, t.best_seconds) << "</td><td>"
      << (t.default_seconds > 0 && t.best_seconds > 0 ? num(t.default_seconds / t.best_seconds, "%.1f") + "&#215;"
                                                      : "&#8211;")
      << "</td><td>" << gflops(t.flops, t.single_shot_seconds) << "</td><td>"
      << (t.drift_max > t.drift_min ? num(1 / t.drift_max, "%.2f") + "&#8211;" + num(1 / t.drift_min, "%.2f") + "&#215;"
                                    : "&#8211;")
      << "</td><td>" << t.failures << "</td></tr>\n";
  }
  h << "</table>\n<p>Tuned: the median of interleaved re-measurement rounds of the best candidates; single-shot: the "
       "search's best single measurement (usually optimistic); machine speed: the first round's fastest schedule, "
       "re-measured every round, against its first measurement (each round's figures were divided by it).</p>\n";
  if (r.total_seconds > 0) {
    h << "<h2>Where the time went</h2>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"620\" height=\"60\" "
         "class=\"plot\"><title>time split</title>";
    double x = 10, total = std::max(1e-9, r.total_seconds);
    const char *colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#999"};
    double other =
        std::max(0.0, r.total_seconds - r.compile_seconds - r.measure_seconds - r.model_seconds - r.search_seconds);
    std::pair<const char *, double> parts[] = {{"compile", r.compile_seconds},
                                               {"measure", r.measure_seconds},
                                               {"model", r.model_seconds},
                                               {"search", r.search_seconds},
                                               {"other", other}};
    int i = 0;
    for (auto [name, secs] : parts) {
      double width = secs / total * 600;
      h << "<rect x=\"" << num(x) << "\" y=\"8\" width=\"" << num(width) << "\" height=\"20\" fill=\"" << colors[i]
        << "\"><title>" << name << " " << num(secs, "%.1f") << " s</title></rect>"
        << "<text x=\"" << 10 + 120 * i << "\" y=\"48\" class=\"l\" fill=\"" << colors[i] << "\">" << name << " "
        << num(secs, "%.1f") << " s</text>";
      x += width, ++i;
    }
    h << "</svg>\n";
  }
  for (auto &t : r.tasks) {
    h << "<h2>" << escape(t.name) << "</h2>\n";
    if (!t.message.empty()) h << "<p>" << escape(t.message) << "</p>\n";
    std::vector<std::pair<double, double>> by_trial, by_time;
    for (auto &c : t.curve)
      by_trial.push_back({double(c.trial), c.best_gflops}), by_time.push_back({c.seconds, c.best_gflops});
    h << svg_plot("best GFLOP/s vs trials", "trials", "GFLOP/s", by_trial, false)
      << svg_plot("best GFLOP/s vs seconds", "seconds", "GFLOP/s", by_time, false);
    if (!t.predicted_vs_measured.empty())
      h << svg_plot(
          "cost model: predicted vs measured", "measured throughput / best", "model score (shifted)",
          [&] {
            double lo = 0;
            for (auto &[p, m] : t.predicted_vs_measured) lo = std::min(lo, p);
            std::vector<std::pair<double, double>> pts;
            for (auto &[p, m] : t.predicted_vs_measured) pts.push_back({m, p - lo});
            return pts;
          }(),
          true);
    h << "\n<details><summary>best trace</summary><pre>" << escape(t.best_trace) << "</pre></details>\n";
  }
  h << "</body></html>\n";
  return h.str();
}

Expected<TuneReport> report_from_database(const db::Database &db, const Target &target, int threads) {
  TuneReport r;
  db::TargetKey key = db::target_key(target, threads);
  r.target = db::short_target(key);
  auto sums = db.summaries();
  if (!sums) return make_error(sums.error());
  std::set<std::string> done;
  for (auto &s : *sums) {
    if (s.target.canonical != key.canonical || !done.insert(s.workload_hash).second) continue;
    auto records = db.records_for_workload(s.workload_hash);
    if (!records) return make_error(records.error());
    std::vector<db::Record> mine;
    for (auto &rec : *records)
      if (rec.target.canonical == key.canonical) mine.push_back(rec);
    std::sort(mine.begin(), mine.end(), [](auto &a, auto &b) { return a.id < b.id; });
    TaskReport t;
    t.name = s.workload_key;
    t.workload_key = s.workload_key;
    t.workload_hash = s.workload_hash;
    t.flops = s.flops;
    double best = 0;
    int64_t first_time = mine.empty() ? 0 : mine.front().timestamp;
    for (auto &rec : mine) {
      ++t.trials;
      bool ok = rec.status == db::RecordStatus::Ok && rec.median_seconds > 0;
      if (!ok) ++t.failures;
      if (ok && rec.message.rfind(kDefaultScheduleNote, 0) == 0) t.default_seconds = rec.median_seconds; // the latest
      if (ok && (best == 0 || rec.median_seconds < best)) best = rec.median_seconds, t.best_trace = rec.trace_json;
      t.curve.push_back({t.trials, double(rec.timestamp - first_time), best > 0 ? t.flops / best * 1e-9 : 0});
    }
    t.best_seconds = best;
    t.single_shot_seconds = best;
    r.tasks.push_back(std::move(t));
  }
  return r;
}

} // namespace tessel::search
