#include "LuamemVersion.h"

const char *luamem_version(void) { return LUAMEM_VERSION; }

const char *luamem_commit(void) { return LUAMEM_COMMIT; }
