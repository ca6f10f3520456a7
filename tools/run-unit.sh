#!/bin/sh
# run-unit.sh -- runs each unit test binary and prints the total summary line.
passed=0 failed=0 status=0
for bin in "$@"; do
    echo "== $(basename "$bin")"
    out=$("$bin") || status=1
    echo "$out"
    line=$(printf '%s\n' "$out" | tail -n 1)
    p=$(echo "$line" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
    f=$(echo "$line" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
    if [ -z "$p" ]; then
        echo "$(basename "$bin") ended without a summary (crashed?)"
        failed=$((failed + 1)); status=1
    else
        passed=$((passed + p)); failed=$((failed + f))
    fi
done
echo "unit total: $passed passed, $failed failed"
exit $status
