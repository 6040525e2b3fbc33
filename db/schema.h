// The on-disk schema and its forward migrations (db/FORMAT.md). Internal to
// db/ and its tests: the fixture generator writes a version-1 file with it.
#pragma once

#include "support/error.h"

#include <sqlite3.h>

#include <string>
#include <vector>

namespace tessel::db::schema {

// PRAGMA user_version of a database this Tessel writes.
constexpr int kCurrentVersion = 2;

// Runs SQL (one or more statements); the error names SQLite's reason.
Status exec(sqlite3 *db, const std::string &sql);

// Creates the first released schema (version 1) in an empty database, inside
// the caller's transaction. A new database is version 1 plus every migration.
Status create_v1(sqlite3 *db, const std::string &created_by);

// One forward step: migrates version `from` to `from + 1`, inside the caller's
// transaction, and sets user_version and meta.schema_version.
struct Migration {
  int from;
  const char *what; // for people: what the step changes
  Status (*run)(sqlite3 *db);
};
// Ordered: migrations()[i].from == i + 1. Add a step here for every new version.
const std::vector<Migration> &migrations();

} // namespace tessel::db::schema
