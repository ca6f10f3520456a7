/* check.h -- the unit test harness: cases are functions named as sentences.
 *
 *   static void parse_rejects_message_without_msh(void) { CHECK(...); }
 *   int main(void) { RUN(parse_rejects_message_without_msh); return check_summary(); }
 *
 * A case passes when none of its CHECKs failed. check_summary() prints
 * "N passed, N failed" and returns the exit status (0 when all passed).
 */
#ifndef CHECK_H
#define CHECK_H

#include <stdbool.h>
#include <string.h>

void check_fail(const char *file, int line, const char *what);
void check_run(const char *name, void (*fn)(void));
int check_summary(void);
bool check_str_eq(const char *a, const char *b);
/* The whole file at path, NUL-terminated (malloc()ed), its length in *len
 * when len is not NULL; NULL when it cannot be read. */
char *check_read_file(const char *path, size_t *len);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            check_fail(__FILE__, __LINE__, #cond);                                                 \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        if (!check_str_eq((a), (b)))                                                               \
            check_fail(__FILE__, __LINE__, #a " == " #b);                                          \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                            \
        if (check_a_ != check_b_) {                                                                \
            check_fail(__FILE__, __LINE__, #a " == " #b);                                          \
            fprintf(stderr, "    got %lld, want %lld\n", check_a_, check_b_);                      \
        }                                                                                          \
    } while (0)

#define RUN(fn) check_run(#fn, fn)

#include <stdio.h>

#endif
