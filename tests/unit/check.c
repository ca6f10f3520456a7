/* check.c -- the unit test harness behind check.h. */
#include "check.h"

#include <stdio.h>
#include <stdlib.h>

static int n_passed, n_failed, case_failures;
static const char *current;

void check_fail(const char *file, int line, const char *what)
{
    case_failures++;
    fprintf(stderr, "  FAIL %s (%s:%d): %s\n", current ? current : "?", file, line, what);
}

bool check_str_eq(const char *a, const char *b)
{
    if (a == b)
        return true;
    if (!a || !b) {
        fprintf(stderr, "    got %s, want %s\n", a ? a : "(null)", b ? b : "(null)");
        return false;
    }
    if (strcmp(a, b) != 0) {
        fprintf(stderr, "    got \"%s\"\n    want \"%s\"\n", a, b);
        return false;
    }
    return true;
}

void check_run(const char *name, void (*fn)(void))
{
    current = name;
    case_failures = 0;
    fn();
    if (case_failures) {
        n_failed++;
        fprintf(stderr, "not ok %s\n", name);
    } else {
        n_passed++;
    }
    current = NULL;
}

int check_summary(void)
{
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed ? 1 : 0;
}

char *check_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    long size = -1;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0)
        data = malloc((size_t)size + 1);
    if (data && fread(data, 1, (size_t)size, f) != (size_t)size) {
        free(data);
        data = NULL;
    }
    fclose(f);
    if (data) {
        data[size] = '\0';
        if (len)
            *len = (size_t)size;
    }
    return data;
}
