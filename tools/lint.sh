#!/bin/sh
# lint.sh -- the house rules a compiler does not check (STYLE.md):
# banned calls in the gateway and its tests.
set -u
banned='strcpy|strcat|sprintf|vsprintf|gets|strtok|atoi|atol|atof|rand|gmtime|localtime'
found=$(grep -rnE "(^|[^A-Za-z0-9_])($banned)[[:space:]]*\(" gateway tests/unit tests/fuzz \
        --include='*.c' --include='*.h' | grep -vE '^[^:]+:[0-9]+:[[:space:]]*(/?\*|//)')
if [ -n "$found" ]; then
    echo "$found"
    echo "lint: banned calls above (see STYLE.md: Memory and json_t)" >&2
    exit 1
fi
echo "lint: no banned calls"
