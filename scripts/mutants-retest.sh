#!/usr/bin/env bash
# Re-tests the survivors of a mutation campaign on the current tree
# (docs/MUTANTS.md):
#
#   scripts/mutants-retest.sh MUTANTS_OUT [RESULTS_FILE]
#
# For every mutant in MUTANTS_OUT/missed.txt, applies cargo-mutants' own diff
# (MUTANTS_OUT/diff/*.diff; patch finds the lines even where later commits
# moved them), runs the campaign's test command, records "caught", "missed"
# or "gone" (the mutated code no longer exists), and restores the file. Run it
# in a scratch worktree: it edits src/ while it works.
set -uo pipefail
if [ $# -lt 1 ]; then
    echo "usage: scripts/mutants-retest.sh MUTANTS_OUT [RESULTS_FILE]" >&2
    exit 2
fi
out=$1
results=${2:-/dev/stdout}
cd "$(dirname "$0")/.."
if ! git diff --quiet -- src core/src experiments; then
    echo "scripts/mutants-retest.sh: src/, core/src/ or experiments/ has local changes; run it on a clean tree" >&2
    exit 2
fi
: > "$results.tmp" 2>/dev/null || true
while read -r mutant; do
    [ -z "$mutant" ] && continue
    file=${mutant%%:*}
    rest=${mutant#*:}
    line=${rest%%:*}
    rest=${rest#*:}
    col=${rest%%:*}
    diff="$out/diff/$(echo "${file}" | sed 's#/#__#g')_line_${line}_col_${col}.diff"
    if [ ! -f "$diff" ]; then
        echo "missing-diff	$mutant" >> "$results.tmp"
        continue
    fi
    if [ ! -f "$file" ] || ! patch --silent --forward --fuzz 3 "$file" < "$diff" > /dev/null 2>&1; then
        git checkout --quiet -- "$file" 2>/dev/null
        echo "gone	$mutant" >> "$results.tmp"
        continue
    fi
    if nice -n 5 cargo test --profile mutants --lib --test reproduce -- \
        theory:: certificate:: transfer:: smoothing:: numerics:: quick_reproduce \
        > /dev/null 2>&1; then
        verdict=missed
    else
        verdict=caught
    fi
    git checkout --quiet -- "$file"
    rm -f "$file.orig" "$file.rej"
    echo "$verdict	$mutant" >> "$results.tmp"
done < "$out/missed.txt"
cat "$results.tmp" > "$results"
rm -f "$results.tmp"
