/* router.c -- matching request paths against the routing table's patterns.
 *
 * Patterns are '/'-separated segments: literals match exactly, {name}
 * matches one non-empty segment. Paths arrive already percent-decoded.
 */
#include "http/http.h"

#include <string.h>

bool http_route_match(const char *pattern, const char *path, char *copy, size_t copy_cap,
                      const char *captures[HTTP_MAX_CAPTURES])
{
    const char *p = pattern;
    char *s;
    size_t n_caps = 0, len = strlen(path);

    if (len + 1 > copy_cap)
        return false;
    memcpy(copy, path, len + 1);
    s = copy;
    for (;;) {
        const char *pend = strchr(p, '/');
        char *send = strchr(s, '/');
        size_t plen = pend ? (size_t)(pend - p) : strlen(p);
        size_t slen = send ? (size_t)(send - s) : strlen(s);

        if (plen >= 2 && p[0] == '{' && p[plen - 1] == '}') {
            if (slen == 0 || n_caps == HTTP_MAX_CAPTURES)
                return false;
            captures[n_caps++] = s;
        } else if (plen != slen || memcmp(p, s, plen) != 0) {
            return false;
        }
        if (!pend || !send)
            return !pend && !send; /* both must end together */
        *send = '\0';              /* ends the capture, if any */
        p = pend + 1;
        s = send + 1;
    }
}
