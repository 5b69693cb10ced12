#!/usr/bin/env bash
# Fuzz the parsers under atheris (coverage-guided), each harness for a bounded time.
#
#   scripts/fuzz.sh [SECONDS] [HARNESS...]      default: 30 seconds each, every fuzz/*.py
#
# Needs the optional extra: pip install -e '.[fuzz]'.  Each harness starts from its committed
# seed corpus (fuzz/corpus/NAME, never written to) and keeps what it discovers in
# $FUZZ_WORK/NAME/corpus (default out/fuzz, git-ignored); crashes, timeouts (a single input
# running over 10 s) and out-of-memory inputs land in $FUZZ_WORK/NAME/artifacts/.  Minimize a
# crasher with `python3 fuzz/NAME.py -minimize_crash=1 -runs=10000 FILE`, commit it under
# fuzz/corpus/NAME/ and fix the parser.  Exit status: 1 if any harness found something.
set -uo pipefail

seconds="${1:-30}"
shift || true
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${FUZZ_WORK:-$root/out/fuzz}"
if [ "$#" -gt 0 ]; then
    names=("$@")
else
    names=()
    for file in "$root"/fuzz/*.py; do
        name="$(basename "$file" .py)"
        [[ "$name" == _* ]] || names+=("$name")
    done
fi

failed=()
for name in "${names[@]}"; do
    mkdir -p "$work/$name/corpus" "$work/$name/artifacts"
    echo "== fuzz $name for ${seconds}s"
    if ! python3 "$root/fuzz/$name.py" -max_total_time="$seconds" -timeout=10 \
            -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1 \
            -artifact_prefix="$work/$name/artifacts/" \
            "$work/$name/corpus" "$root/fuzz/corpus/$name"; then
        failed+=("$name")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "findings in: ${failed[*]} (see $work/<name>/artifacts/)" >&2
    exit 1
fi
echo "no findings in: ${names[*]}"
