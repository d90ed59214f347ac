#!/usr/bin/env bash
# Training-time ablations (README, "What each data flow is worth"): the recipe of configs/beer2.cfg with one data flow
# or one kind of evidence switched off, all on one schedule; each run is then tuned on testa and evaluated on testa and
# testb. fixed_candidates trains on corpus/aida/train_kept.spacy (`python -m spacy_beer2 keep-candidates`).
#
#   bash scripts/ablate.sh OUT KB ALIASES TRANSFORMER GPU_ID STEPS EVAL_FREQUENCY PARALLEL [TIME_LIMIT_S]
#
# PARALLEL runs train side by side (one GPU has room for several; on 2 CPU cores use 1). TIME_LIMIT_S (0 = none)
# stops a training, which then keeps its best checkpoint so far. RUNS (environment, default all five) picks runs by
# name, e.g. RUNS="no_priors fixed_candidates" to add rows to an earlier table. Results: OUT/<run>/{train.log,
# threshold.json,testa.json,testb.json}.
set -uo pipefail
out=$1 kb=$2 aliases=$3 transformer=$4 gpu=$5 steps=$6 eval=$7 parallel=$8 limit=${9:-0}
corpus=corpus/aida
python=${PYTHON:-python3}  # the interpreter that has spacy-beer2 installed
declare -A settings=(
  [full]=""
  [no_span_retrieval]="--components.beer2_linker.span_retrieval false"
  [no_alias_candidates]="--components.beer2_linker.alias_candidates false"
  [no_priors]="--components.beer2_linker.use_priors false"
  [fixed_candidates]="--components.beer2_linker.dynamic_candidates false"
)

ablate() {
  local run=$1 train=$corpus/train.spacy
  [ "$run" = fixed_candidates ] && train=$corpus/train_kept.spacy
  mkdir -p "$out/$run"
  # shellcheck disable=SC2086  # the settings are several words
  timeout "$limit" "$python" -m spacy train configs/beer2.cfg --output "$out/$run" --paths.train "$train" \
    --paths.dev $corpus/testa.spacy --paths.kb "$kb" --paths.aliases "$aliases" --paths.transformer "$transformer" \
    --gpu-id "$gpu" --training.max_steps "$steps" --training.eval_frequency "$eval" \
    --training.optimizer.learn_rate.total_steps "$steps" ${settings[$run]} > "$out/$run/train.log" 2>&1
  echo "$run: training ended with $? after $SECONDS s"
  local model=$out/$run/model-best
  [ -d "$model" ] || model=$out/$run/model-last
  "$python" -m spacy_beer2 tune-threshold "$model" $corpus/testa.spacy --save "$out/$run/model-tuned" \
    --output "$out/$run/threshold.json" --gpu-id "$gpu" > "$out/$run/tune.log" 2>&1 || return 1
  for split in testa testb; do
    "$python" -m spacy_beer2 evaluate "$out/$run/model-tuned" $corpus/$split.spacy --output "$out/$run/$split.json" \
      --gpu-id "$gpu" > "$out/$run/eval_$split.log" 2>&1 || return 1
  done
  echo "$run: evaluated after $SECONDS s"
}

failed=0
for run in ${RUNS:-full no_span_retrieval no_alias_candidates no_priors fixed_candidates}; do
  [ -n "${settings[$run]+set}" ] || { echo "unknown run: $run" >&2; exit 2; }
  while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n || failed=1; done
  ablate "$run" &
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || failed=1; done
"$python" - "$out" <<'PY'
import json, sys
from pathlib import Path

print("| run | testa EL F1 / MD F1 / Recall@K | testb EL F1 / MD F1 / Recall@K |\n| --- | --- | --- |")
for run in ["full", "no_span_retrieval", "no_alias_candidates", "no_priors", "fixed_candidates"]:
    cells = []
    for split in ("testa", "testb"):
        path = Path(sys.argv[1]) / run / f"{split}.json"
        m = json.loads(path.read_text()) if path.exists() else None
        cells.append(" / ".join(f"{100 * m[k]:.1f}" for k in ("el_f", "md_f", "retriever_recall")) if m else "—")
    print(f"| {run} | {cells[0]} | {cells[1]} |")
PY
exit $failed
