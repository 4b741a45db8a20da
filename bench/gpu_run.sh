#!/usr/bin/env bash
# The GPU run of the whole repository, in stages that stop at the first failure and show its log.
#
#   bash bench/gpu_run.sh smoke q1                  # command 1: CUDA tests + fast notebooks, then Q1 and the extra (full)
#   bash bench/gpu_run.sh q2 bench collect "$OUT"   # command 2: Q2 (full), the speed bench, bring the results back
#   FAST=1 bash bench/gpu_run.sh smoke q1 q2 bench collect /tmp/out   # rehearsal on any machine (writes runs/fast/)
#
# Stages
#   smoke    tests/test_cuda_graph.py (graph vs eager for the real VAE and VQ-VAE updates; on a CUDA machine a
#            skip counts as a failure) and all three notebooks in fast mode (executed copies in runs/fast/).
#   q1       Q1_VAE_CVAE.ipynb, then extras/beta_vae_disentanglement.ipynb, recorded in full mode (in place,
#            results/ refreshed: python -m tools.notebooks --record).
#   q2       Q2_VQVAE.ipynb recorded in full mode.
#   bench    bench/bench_q2.py: the skeleton's loop, the notebook's eager loop and the opt-in CUDA-graph loop,
#            1,000 timed updates each after 50 warm-up updates, in one process -> results/bench_q2.json.
#   collect DIR   copies the three notebooks, plus results/ and the logs as two archives, into DIR (5 files).
# With FAST=1 every stage runs in fast mode and writes under runs/fast/, so committed files stay untouched.
# FAST is read as the notebooks read it (python -m utils.runtime --flag FAST): 1/true/yes, 0/false/no/unset; any
# other value stops the script before it runs anything. So do an unknown stage, collect without a writable folder,
# a bad switch (python -m utils.runtime --check), and, for q1/q2, unreadable judge weights.
set -euo pipefail
cd "$(dirname "$0")/.."
export MPLBACKEND=Agg PYTHONUNBUFFERED=1 DATA_DOWNLOAD=0
# FAST is read by the notebooks' own parser (utils.runtime._flag): FAST=2 or FAST=on stops here, not later.
fast=$(python -m utils.runtime --flag FAST) || exit 2
record=--record; [ "$fast" = 1 ] && record=""    # a smoke run never replaces the committed record
[ "$fast" = 1 ] || export MODE=full

# Preflight: every stage name, collect's folder, the switches and the judge's weights are checked before the first
# stage runs, so that a run of hours cannot fail at its end on something known at its start.
usage="stages: smoke, q1, q2, bench, collect DIR"
[ $# -gt 0 ] || { echo "no stage given ($usage)" >&2; exit 2; }
args=("$@"); i=0; judge=0; made_copies=0
while [ $i -lt ${#args[@]} ]; do
  case "${args[$i]}" in
    smoke) made_copies=1 ;;
    q1|q2) judge=1 ;;
    bench) ;;
    collect)
      i=$((i + 1)); dest=${args[$i]:-}
      case "$dest" in ""|smoke|q1|q2|bench|collect)
        echo "collect needs a folder after it: collect DIR (got '${dest}')" >&2; exit 2 ;; esac
      if ! mkdir -p "$dest" 2>/dev/null || ! touch "$dest/.gpu_run_write_test" 2>/dev/null; then
        echo "collect: cannot write into '$dest': choose a folder you can write to" >&2; exit 2
      fi
      rm -f "$dest/.gpu_run_write_test"
      if [ "$fast" = 1 ] && [ "$made_copies" = 0 ]; then
        for nb in runs/fast/Q1_VAE_CVAE.ipynb runs/fast/Q2_VQVAE.ipynb runs/fast/beta_vae_disentanglement.ipynb; do
          [ -f "$nb" ] || { echo "collect (FAST=1) packs $nb, which is not there: put smoke before collect" >&2
                            exit 2; }
        done
      fi ;;
    *) echo "unknown stage '${args[$i]}' ($usage)" >&2; exit 2 ;;
  esac
  i=$((i + 1))
done
python -m utils.runtime --check || exit 2           # DEVICE, MODE, CPU_THREADS, ... as the notebooks read them
if [ "$judge" = 1 ]; then python -m utils.classifier --verify || exit 2; fi
logs=runs/gpu_logs; mkdir -p "$logs"

stage() {  # stage NAME COMMAND...: run, log, time; on failure print the log's tail and stop
  local name=$1; shift
  local t0=$SECONDS
  echo "== $name: $*"
  if ! "$@" >"$logs/$name.log" 2>&1; then
    echo "!! $name failed after $((SECONDS - t0)) s; last lines of $logs/$name.log:"
    tail -n 40 "$logs/$name.log"
    exit 1
  fi
  echo "   $name ok in $((SECONDS - t0)) s"
}

cuda_tests() {  # on a CUDA machine a skipped graph-vs-eager test is a failure: it is what this run must show
  local out; out=$(python -m pytest -q -rs tests/test_cuda_graph.py) || { echo "$out"; return 1; }
  echo "$out"
  if python -c "import torch, sys; sys.exit(not torch.cuda.is_available())" && grep -q skipped <<<"$out"; then
    echo "CUDA is present but tests were skipped"; return 1
  fi
}

python -c "import torch; print('torch', torch.__version__, '| cuda', torch.cuda.is_available(),
  torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
while [ $# -gt 0 ]; do
  case "$1" in
    smoke)
      stage cuda_tests cuda_tests
      stage smoke_notebooks env FAST=1 python -m tools.notebooks ;;
    q1)
      stage q1 python -m tools.notebooks $record Q1_VAE_CVAE.ipynb
      stage extra python -m tools.notebooks $record extras/beta_vae_disentanglement.ipynb ;;
    q2)
      stage q2 python -m tools.notebooks $record Q2_VQVAE.ipynb ;;
    bench)
      if [ "$fast" = 1 ]; then stage bench python bench/bench_q2.py --updates 5 --warmup 2 --test-limit 256
      else stage bench python bench/bench_q2.py --updates 1000 --warmup 50; fi ;;
    collect)
      dest=$2; shift                                  # checked by the preflight above
      if [ "$fast" = 1 ]; then
        nbs=(runs/fast/Q1_VAE_CVAE.ipynb runs/fast/Q2_VQVAE.ipynb runs/fast/beta_vae_disentanglement.ipynb)  # copies
        results=runs/fast/results
      else
        nbs=(Q1_VAE_CVAE.ipynb Q2_VQVAE.ipynb extras/beta_vae_disentanglement.ipynb); results=results
      fi
      cp "${nbs[@]}" "$dest"/
      tar -czf "$dest"/results.tar.gz "$results"
      tar -czf "$dest"/logs.tar.gz "$logs"
      ls -la "$dest" ;;
    *) echo "unknown stage '$1' ($usage)" >&2; exit 2 ;;
  esac
  shift
done
