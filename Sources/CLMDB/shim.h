#ifndef SITROOM_CLMDB_SHIM_H
#define SITROOM_CLMDB_SHIM_H

// LMDB (Debian: liblmdb-dev). lmdb.h declares no variadic functions, so it is used as is;
// the Swift wrapper lives in Sources/LMDB.
#include <lmdb.h>

#endif
