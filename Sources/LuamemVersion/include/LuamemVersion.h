#ifndef LUAMEM_VERSION_H
#define LUAMEM_VERSION_H

/* luamem's version, as Package.swift sets it. */
const char *luamem_version(void);

/* The commit this build comes from, or "" when the builder did not say (LUAMEM_COMMIT). */
const char *luamem_commit(void);

#endif
