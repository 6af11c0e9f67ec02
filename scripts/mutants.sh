#!/usr/bin/env bash
# Mutation testing on a uniform sample (issue 12, docs/MUTANTS.md).
#
#   scripts/mutants.sh K N [extra cargo-mutants arguments]
#
# runs shard K of N with round-robin sharding, i.e. every N-th mutant of the
# files below starting at the K-th: a uniform sample, unlike the default
# contiguous sharding. The test command is the mutated modules' unit tests
# plus `reproduce --quick` (the verdicts readers see), which kill fast.
# Results go to mutants.out/ (cargo-mutants' own layout).
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: scripts/mutants.sh K N [cargo-mutants args...]" >&2
    exit 2
fi
k=$1; n=$2; shift 2
cd "$(dirname "$0")/.."
command -v cargo-mutants >/dev/null || {
    echo "scripts/mutants.sh: cargo-mutants not found (cargo install cargo-mutants)" >&2
    exit 2
}
files=(
    core/src/theory/bounds.rs
    core/src/problem/certificate.rs
    core/src/transfer/model.rs
    core/src/solvers/smoothing.rs
    core/src/problem/numerics.rs
    core/src/problem/directed.rs
    core/src/transfer/fantope.rs
    src/theory/checks.rs
)
file_args=()
for f in "${files[@]}"; do file_args+=(--file "$f"); done
# The test command (`cargo test` with the arguments after `--`): the unit
# tests of the mutated modules (in every crate of the workspace: a core
# mutant must also face the lab's verdicts), and tests/reproduce.rs's quick run, which
# fails when any check of `reproduce --quick` fails. libtest ORs its filters.
# The `mutants` profile (Cargo.toml) builds incrementally at opt-level 1: a
# mutant rebuilds in seconds and `reproduce --quick` still runs in about 20 s.
exec nice -n 5 cargo mutants \
    --workspace \
    "${file_args[@]}" \
    --shard "$k/$n" --sharding round-robin \
    --test-tool cargo \
    --test-workspace=true \
    --profile mutants \
    --timeout 300 --build-timeout 900 \
    "$@" \
    -- --lib --test reproduce \
    -- theory:: certificate:: transfer:: smoothing:: numerics:: quick_reproduce
