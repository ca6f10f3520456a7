/* tune.c -- the allocator's per-thread cache, sized for requests that build
 * and free thousands of small JSON nodes.
 *
 * glibc keeps at most 7 freed chunks of each size per thread (its tcache). A
 * referral frees thousands of nodes at once, so most of them, and the next
 * referral's mallocs, went through glibc's shared bins: a tenth of a request
 * thread's instructions (make profile). The cache's size is a tunable that
 * glibc reads only when a program starts (GLIBC_TUNABLES), so a gateway
 * started without it starts itself once more with it added: the same
 * process (execv keeps the pid, the descriptors and the rest of the
 * environment), the same arguments. A GLIBC_TUNABLES that already sets the
 * cache (the operator's, or the first start's) is left as it is;
 * GATEWAY_MALLOC_TUNE=0 turns the whole thing off.
 */
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TCACHE_KEY   "glibc.malloc.tcache_count"
#define TCACHE_COUNT "1000" /* most of the gain (make profile: 300, 1000, 4000) */

void gw_malloc_tune(char **argv)
{
    const char *now = getenv("GLIBC_TUNABLES"), *off = getenv("GATEWAY_MALLOC_TUNE");
    char *saved = now ? strdup(now) : NULL, *wanted;
    size_t n;

    if ((off && strcmp(off, "0") == 0) || (now && strstr(now, TCACHE_KEY)) || (now && !saved))
        return;
    n = (saved ? strlen(saved) + 1 : 0) + sizeof TCACHE_KEY "=" TCACHE_COUNT;
    wanted = malloc(n);
    if (wanted) {
        snprintf(wanted, n, "%s%s" TCACHE_KEY "=" TCACHE_COUNT, saved ? saved : "",
                 saved && *saved ? ":" : "");
        if (setenv("GLIBC_TUNABLES", wanted, 1) == 0)
            execv("/proc/self/exe", argv); /* returns only when it failed */
        if (saved)
            setenv("GLIBC_TUNABLES", saved, 1); /* as it was: go on untuned */
        else
            unsetenv("GLIBC_TUNABLES");
    }
    free(wanted);
    free(saved);
}
