#!/usr/bin/env bash
# Grade a course on a Slurm cluster:
#   scripts/slurm/submit.sh SUBMISSIONS OUT [SHARDS]
# 1. here, once: `grader prepare` stages the data and calibrates (3 runs of the solution, about a
#    minute on the default subset; nothing when the cache holds it) and works out what one shard
#    needs (cores, memory, time);
# 2. an array job of SHARDS tasks (default 8), one shard each, with those resources;
# 3. the merge into OUT, as a job that starts when every shard has succeeded.
# Prints the two job ids ("array job N", "merge job M"). Run it from the folder with grading.toml,
# with the grader's venv active (the jobs get this shell's environment, GRADER_CACHE included).
set -euo pipefail
submissions=${1:?usage: submit.sh SUBMISSIONS OUT [SHARDS]}
out=${2:?usage: submit.sh SUBMISSIONS OUT [SHARDS]}
shards=${3:-8}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
options=$(mktemp)
trap 'rm -f "$options"' EXIT
grader prepare "$submissions" --out "$out" --shards "$shards" --options-file "$options"
read -r -a resources < "$options"
array_job=$(sbatch --parsable --array="1-$shards" "${resources[@]}" "$here/grade-shard.sbatch" "$submissions" "$out")
array_job=${array_job%%;*}   # --parsable prints "id" or "id;cluster"
merge_job=$(sbatch --parsable --dependency="afterok:$array_job" "$here/merge.sbatch" "$out")
merge_job=${merge_job%%;*}
echo "array job $array_job (${shards} shards into ${out%/}-shards/), merge job $merge_job (into $out, once every shard succeeded)"
