/*
 * unix.h - what the files of the Unix OS layer share among themselves.
 * Portable code never includes this.
 */
#ifndef CACHELOCK_UNIX_H
#define CACHELOCK_UNIX_H

#include "../internal.h"

/* Move a descriptor to 3 or above (closing the low one): a lock file
 * opened as descriptor 0 would be read or written by code that thinks it
 * is stdin.  Returns the descriptor, or -1 with errno set (EMFILE when no
 * descriptor above 2 is left). */
int cachelock__os_keep_high(int fd);

#endif
