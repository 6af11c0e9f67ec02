#!/usr/bin/env bash
# The GPU check (taskrobust gpu-check), start to finish.
#
#   scripts/gpu-check.sh build            # on a machine with Rust: build with --features gpu
#                                         # and put the binary in ship/taskrobust
#   scripts/gpu-check.sh run [OUT_DIR]    # on the GPU machine: small, then full scale
#   scripts/gpu-check.sh [OUT_DIR]        # both, on one machine with Rust and a GPU
#
# The binary is built without target-cpu=native: it is built on one machine
# and run on another (the GPU machines here have no Rust toolchain and no
# network). cudarc loads libcuda, libnvrtc and libcublas (CUDA 13) at run
# time; this script puts their folders on LD_LIBRARY_PATH. The JSON reports
# and gap CSVs go to OUT_DIR (default figures/gpu). Small then full scale take
# well under 8 minutes together on an H100 (each step has its own timeout);
# then both again with --dtype f32.
set -euo pipefail

cd "$(dirname "$0")/.."
SHIP=ship/taskrobust

build() {
    # A target-cpu=native from the environment would make a binary that may not run there.
    if [[ "${RUSTFLAGS:-}" == *native* ]]; then
        echo "gpu-check.sh: RUSTFLAGS contains target-cpu=native; unset it" >&2
        exit 2
    fi
    cargo build --release --features gpu
    mkdir -p ship
    cp target/release/taskrobust "$SHIP"
    echo "built $SHIP ($(du -h "$SHIP" | cut -f1)); carry ship/ to the GPU machine"
}

# Folders holding libcuda, libnvrtc.so.13 or libcublas.so.13, first found first.
cuda_library_path() {
    local dirs=() d site
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/nvidia/lib64 /usr/lib/x86_64-linux-gnu; do
        [[ -d "$d" ]] && dirs+=("$d")
    done
    # pip wheels (nvidia-cuda-nvrtc, nvidia-cublas): site-packages/nvidia/{cu13,cublas,cuda_nvrtc}/lib
    for py in python3 /opt/torch/.venv/bin/python3; do
        command -v "$py" >/dev/null 2>&1 || continue
        for site in $("$py" -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null); do
            [[ -d "$site/nvidia" ]] || continue
            while IFS= read -r d; do dirs+=("$d"); done < <(
                find "$site/nvidia" -maxdepth 3 \( -name 'libnvrtc.so*' -o -name 'libcublas.so*' \) -printf '%h\n' 2>/dev/null | sort -u)
        done
    done
    local IFS=:
    echo "${dirs[*]}"
}

run() {
    local out="${1:-figures/gpu}"
    local bin="$SHIP"
    [[ -x "$bin" ]] || bin=target/release/taskrobust
    if [[ ! -x "$bin" ]]; then
        echo "gpu-check.sh: no binary at $SHIP or target/release/taskrobust; run 'scripts/gpu-check.sh build' first" >&2
        exit 2
    fi
    local libs
    libs="$(cuda_library_path)"
    export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
    mkdir -p "$out"
    local status=0
    timeout 90 "$bin" gpu-check --scale small --out "$out" || status=$?
    echo "gpu-check --scale small: exit status $status"
    local full=0
    timeout 360 "$bin" gpu-check --scale full --out "$out" || full=$?
    echo "gpu-check --scale full: exit status $full"
    # The same at f32 (host data stored as f32; issue 15): gpu-check-*-f32.*
    local small32=0 full32=0
    timeout 90 "$bin" gpu-check --scale small --dtype f32 --out "$out" || small32=$?
    echo "gpu-check --scale small --dtype f32: exit status $small32"
    timeout 360 "$bin" gpu-check --scale full --dtype f32 --out "$out" || full32=$?
    echo "gpu-check --scale full --dtype f32: exit status $full32"
    ls -l "$out"
    [[ $status -eq 0 && $full -eq 0 && $small32 -eq 0 && $full32 -eq 0 ]]
}

case "${1:-all}" in
    build) build ;;
    run) run "${2:-figures/gpu}" ;;
    all) build; run "figures/gpu" ;;
    *) build; run "$1" ;;
esac
