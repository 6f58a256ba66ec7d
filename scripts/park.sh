#!/usr/bin/env bash
# Parks an unfinished experiment's workdir in the repository, so that a run longer than one session
# resumes in the next: a session's own folders (runs/) do not outlive it, a commit does.
#   bash scripts/park.sh <workdir> [<log>]          -> parked/<workdir's name>/ (+ run.log); commit it
#   bash scripts/park.sh --unpark <name> <workdir>  -> parked/<name> copied to <workdir> (+ <workdir>.log)
# then rerun the experiment's own command, which resumes there. Each training loop keeps only its
# newest checkpoint, the one resume reads (orbax keeps two: the other is a fallback a park does not
# need). PARK_DIR moves the parking folder (default: parked/ at the repository's root; tests).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
P=${PARK_DIR:-$ROOT/parked}

if [ "${1:-}" = "--unpark" ]; then
  [ $# -eq 3 ] || { echo "usage: bash scripts/park.sh --unpark <name> <workdir>" >&2; exit 2; }
  [ -d "$P/$2" ] || { echo "nothing is parked as '$2': see parked/README.md" >&2; exit 2; }
  [ -e "$3" ] && { echo "$3 exists already: move it away, or resume there instead" >&2; exit 2; }
  mkdir -p "$(dirname "$3")" && cp -a "$P/$2" "$3" && rm -f "$3/run.log"
  if [ -f "$P/$2/run.log" ]; then cp "$P/$2/run.log" "$3.log"; fi
  echo "unparked $2 -> $3"
  exit 0
fi

[ $# -ge 1 ] && [ -d "$1" ] || { echo "usage: bash scripts/park.sh <workdir> [<log>]" >&2; exit 2; }
src=${1%/}
dst=$P/$(basename "$src")
rm -rf "$dst" && mkdir -p "$P" && cp -a "$src" "$dst"
if [ $# -ge 2 ]; then  # a log names its workdir by its absolute path: relative to the repository
  parent=$(cd "$(dirname "$src")" && pwd)  # or to the workdir's folder, as a commit must carry no
  sed -e "s|$ROOT/||g" -e "s|$parent/||g" "$2" > "$dst/run.log"  # machine paths
fi
for loop in "$dst"/checkpoints/*/ "$dst"/budget_*/checkpoints/*/; do  # a sweep's budgets too
  [ -d "$loop" ] || continue
  newest=$(ls "$loop" | grep -E '^[0-9]+$' | sort -n | tail -1 || true)
  for entry in "$loop"*/; do  # older steps and unfinished (tmp) saves go; the manager's metadata stays
    name=$(basename "$entry")
    if [[ "$name" =~ ^[0-9]+$ || "$name" == *tmp* ]] && [ "$name" != "$newest" ]; then
      rm -rf "$entry"
    fi
  done
done
# orbax writes the machine's path into each checkpoint's commit_success.txt; resume reads only that
# the file exists, and a commit must not carry machine paths.
find "$dst" -name commit_success.txt -exec sh -c 'echo "Checkpoint commit was successful" > "$1"' _ {} \;
echo "parked $src -> $dst ($(du -sh "$dst" | cut -f1)); unpark with: bash scripts/park.sh --unpark $(basename "$dst") <workdir>"
