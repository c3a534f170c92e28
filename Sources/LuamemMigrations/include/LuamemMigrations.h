#ifndef LUAMEM_MIGRATIONS_H
#define LUAMEM_MIGRATIONS_H

/// One schema migration: Migrations/NNNN_name.sql, embedded at build time with #embed so the
/// in-process agent reads no file but its database.
typedef struct luamem_migration {
    int version;
    const char *name;
    const char *sql;
} luamem_migration;

/// The migrations in order of version; `count` receives how many there are.
const luamem_migration *luamem_migrations(int *count);

/// The ClickHouse schema of `luamem ship` (Migrations/clickhouse/NNNN_*.sql), file `number`
/// from 1, {database} to be replaced; NULL past the last.
const char *luamem_clickhouse_schema(int number);

#endif
