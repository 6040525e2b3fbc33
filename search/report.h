// The tuning report: one self-contained HTML file (inline SVG plots, no
// scripts or external files) of a tuning run or of a tuning database.
#pragma once

#include "db/database.h"
#include "search/tuner.h"

namespace tessel::search {

std::string html_report(const TuneReport &report);
// A report of what `db` holds for `target` with `threads`: every workload's records in id order
// (curves against trials and measurement time), default and best kernels. Model scores and the
// time split are only known to the tuning run itself (`tessel tune --report`).
Expected<TuneReport> report_from_database(const db::Database &db, const Target &target, int threads);

} // namespace tessel::search
