/*
 * fuzz_parsers.c - libFuzzer target for everything that parses untrusted
 * text: the source-name validator, the /proc/locks line parser, and the
 * CLI's duration and integer parsers.  The first byte picks the parser.
 *
 *   make fuzz FUZZ_SECONDS=30
 */
#include "internal.h"
#include "cli.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char *s = malloc(size);
    if (!s)
        return 0;
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    switch (data[0] % 4) {
    case 0: {
        const char *why = NULL;
        int rc = cachelock__name_check(s, strlen(s), 0, &why);
        /* Properties: refused names have a reason; accepted names contain no
         * separator and fit NAME_MAX with the suffix. */
        if ((rc < 0) != (why != NULL))
            abort();
        if (rc == 0 && (strchr(s, '/') || strchr(s, '\\') || strlen(s) > CACHELOCK_NAME_MAX))
            abort();
        if (rc == 0) {
            struct cachelock__path p;
            if (cachelock__path_build(&p, "/c", s, 0) != 0 || strncmp(p.buf, "/c/.locks/", 10) != 0)
                abort();
            cachelock__path_free(&p);
        }
        break;
    }
    case 1: {
        struct cachelock__lockline l;
        if (cachelock__parse_lockline(s, &l) == 0 && l.pid < 0)
            abort();
        break;
    }
    case 2: {
        long ms;
        if (cli_parse_duration(s, &ms) == 0 && ms < 0)
            abort();
        break;
    }
    case 3: {
        long v;
        if (cli_parse_uint(s, 255, &v) == 0 && (v < 0 || v > 255))
            abort();
        break;
    }
    }
    free(s);
    return 0;
}
