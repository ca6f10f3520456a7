#!/bin/sh
# fuzz.sh -- runs the libFuzzer targets built in build/fuzz/fuzz/.
#   tools/fuzz.sh run SECONDS target...     explore for SECONDS each
#   tools/fuzz.sh replay 0 target...        replay the committed corpora once
# Prints "N passed, N failed" (a target fails on any crash, leak or timeout).
set -u
mode=$1 seconds=$2
shift 2
passed=0 failed=0
for t in "$@"; do
    bin=build/fuzz/fuzz/fuzz_$t
    corpus=tests/fuzz/corpus/$t
    dict=tests/fuzz/$t.dict
    [ -f "$dict" ] || dict=tests/fuzz/$(echo "$t" | sed 's/_.*//').dict
    opts="-timeout=10 -rss_limit_mb=2048 -print_final_stats=0"
    [ -f "$dict" ] && opts="$opts -dict=$dict"
    mkdir -p "$corpus" build/fuzz/new-$t
    if [ "$mode" = replay ]; then
        out=$("$bin" $opts -runs=0 "$corpus" 2>&1)
    else
        out=$("$bin" $opts -max_total_time="$seconds" -artifact_prefix=build/fuzz/ \
              build/fuzz/new-$t "$corpus" 2>&1)
    fi
    if [ $? -eq 0 ]; then
        passed=$((passed + 1))
        echo "fuzz_$t: $(echo "$out" | grep -aE '^#[0-9]+.*(DONE|INITED)' | tail -n 1)"
    else
        failed=$((failed + 1))
        echo "$out" | tail -n 40
        echo "fuzz_$t: FAILED"
    fi
done
echo "fuzz ($mode): $passed passed, $failed failed"
[ "$failed" -eq 0 ]
