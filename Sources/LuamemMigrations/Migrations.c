#include "LuamemMigrations.h"

#pragma clang diagnostic ignored "-Wc23-extensions"

// The SQL files at the top of the repository are the single source of truth. Adding a migration
// means adding the file and one entry below; a test checks that every file is listed.
static const char migration_0001[] = {
#embed "../../Migrations/0001_initial.sql"
    , 0
};

static const char migration_0002[] = {
#embed "../../Migrations/0002_change_views.sql"
    , 0
};

static const char migration_0003[] = {
#embed "../../Migrations/0003_snapshot_site_rows.sql"
    , 0
};

static const char migration_0004[] = {
#embed "../../Migrations/0004_time_ordered_rows_and_rollups.sql"
    , 0
};

static const char migration_0005[] = {
#embed "../../Migrations/0005_run_status_and_parent.sql"
    , 0
};

static const char migration_0006[] = {
#embed "../../Migrations/0006_run_uuid.sql"
    , 0
};

static const luamem_migration migrations[] = {
    {1, "0001_initial", migration_0001},
    {2, "0002_change_views", migration_0002},
    {3, "0003_snapshot_site_rows", migration_0003},
    {4, "0004_time_ordered_rows_and_rollups", migration_0004},
    {5, "0005_run_status_and_parent", migration_0005},
    {6, "0006_run_uuid", migration_0006},
};

static const char clickhouse_0001[] = {
#embed "../../Migrations/clickhouse/0001_initial.sql"
    , 0
};

static const char clickhouse_0002[] = {
#embed "../../Migrations/clickhouse/0002_site_keys.sql"
    , 0
};

const char *luamem_clickhouse_schema(int number) {
    switch (number) {
    case 1: return clickhouse_0001;
    case 2: return clickhouse_0002;
    default: return 0;
    }
}

const luamem_migration *luamem_migrations(int *count) {
    *count = (int)(sizeof migrations / sizeof migrations[0]);
    return migrations;
}
