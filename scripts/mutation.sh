#!/usr/bin/env bash
# Mutation testing (mutmut 3) of the modules an examiner's result depends on. Not run in CI (slow); figures go in
# docs/testing.md. Each module runs against its own test files only, niced and single-threaded, in a scratch copy
# of the tree (mutmut writes its mutants/ folder there, never into the checkout).
#
#   bash scripts/mutation.sh [GROUP ...] [--sample N] [--seed S] [--work DIR]
#   bash scripts/mutation.sh [GROUP ...] --recheck [--work DIR]
#
# GROUPs (default: all): engines explain calibration alignment audit imagestore fileio signing signature_check.
# --sample N runs a seeded random sample of N of a group's mutants (all are generated; the sample is drawn from the
# sorted list of mutant names with Python's random.Random(S), so the same seed gives the same sample).
# --recheck takes the survivors of an earlier run that scripts/mutation_survivors.txt says a new test kills, applies
# each to the scratch tree with `mutmut apply`, runs that test from the checkout as it is now (after checking it
# passes unmutated) and prints killed/survived: a survivor shown killed without rerunning the whole sample. Without
# an earlier run in WORK it generates the group's mutants first (no mutant is run).
# Needs `pip install mutmut==3.8.1` in .venv. Prints killed/survived/timeout per group and leaves the survivors'
# names in WORK/GROUP/survivors.txt (`cd WORK/GROUP && mutmut show NAME` shows a mutant's diff).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PY=${PYTHON:-$REPO/.venv/bin/python}
MUTMUT=$(dirname "$PY")/mutmut
WORK=${TMPDIR:-/tmp}/xfr-mutation
SAMPLE=0
SEED=17
RECHECK=0
GROUPS_=()
while [ $# -gt 0 ]; do
    case "$1" in
        --sample) SAMPLE=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --work) WORK=$2; shift 2 ;;
        --recheck) RECHECK=1; shift ;;
        *) GROUPS_+=("$1"); shift ;;
    esac
done

# group -> "module file|test files" (a module is mutated against these tests only)
declare -A PLAN=(
    [engines]="xfr_desktop/core/algorithm1_engines.py|tests/test_engines.py"
    [explain]="xfr_desktop/core/explain.py|tests/test_engines.py tests/test_explanation_state.py"
    [calibration]="xfr_desktop/core/calibration.py|tests/test_calibration.py tests/test_pinned_parameters.py"
    [alignment]="xfr_desktop/core/alignment.py|tests/test_alignment.py"
    [audit]="xfr_desktop/store/audit.py|tests/test_audit.py tests/test_pinned_parameters.py"
    [imagestore]="xfr_desktop/store/imagestore.py|tests/test_store.py tests/test_store_durability.py"
    [fileio]="xfr_desktop/core/fileio.py|tests/test_store_durability.py tests/test_calibration.py tests/test_imageio.py tests/test_signing.py"
    [signing]="xfr_desktop/report/signing.py|tests/test_signing.py tests/test_pinned_parameters.py"
    [signature_check]="xfr_desktop/report/signature_check.py|tests/test_signing.py tests/test_pinned_parameters.py"
)
ORDER=(engines explain calibration alignment audit imagestore fileio signing signature_check)
[ ${#GROUPS_[@]} -gt 0 ] || GROUPS_=("${ORDER[@]}")

# scratch_tree DIR MODULE TESTS: a copy of the tree (without .git/.venv; models/ and resources/ hold files the tests
# load) whose pyproject.toml tells mutmut to mutate MODULE against TESTS only
scratch_tree() {
    rm -rf "$1" && mkdir -p "$1"
    tar -C "$REPO" --exclude=.git --exclude=.venv --exclude='__pycache__' -cf - \
        pyproject.toml xfr_desktop tests models resources | tar -C "$1" -xf -
    {
        echo
        echo "[tool.mutmut]"
        echo "source_paths = [\"xfr_desktop\"]"
        echo "only_mutate = [\"$2\"]"
        printf 'pytest_add_cli_args_test_selection = [%s]\n' "$(printf '"%s",' $3 | sed 's/,$//')"
        echo "pytest_add_cli_args = [\"-p\", \"no:cacheprovider\", \"-x\", \"-q\"]"
        echo "also_copy = [\"models\", \"resources\"]"
    } >> "$1/pyproject.toml"
}

# generate_mutants: every mutant of the module and mutmut's record of which tests reach which function, running none
generate_mutants() {
    nice -n 19 "$MUTMUT" run --max-children 1 "__no_such_mutant__" >/dev/null 2>&1 || true
}

export XFR_SHARED_DIR=${XFR_SHARED_DIR:-$(cd "$REPO/.." && pwd)/shared}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 QT_QPA_PLATFORM=offscreen PYTHONHASHSEED=0
mkdir -p "$WORK"
for group in "${GROUPS_[@]}"; do
    spec=${PLAN[$group]:?unknown group $group}
    module=${spec%%|*}
    tests=${spec#*|}
    dir=$WORK/$group
    if [ "$RECHECK" = 1 ]; then
        # survivors a new test is said to kill (scripts/mutation_survivors.txt): apply each, run that test
        claims=$(awk -v g="$group" '$1 == g && $3 == "killed-by" {print $2 " " $4}' "$REPO/scripts/mutation_survivors.txt")
        [ -n "$claims" ] || continue
        echo "== $group: recheck of $(echo "$claims" | wc -l) survivors said to be killed by a new test"
        if [ ! -d "$dir/mutants" ]; then   # no earlier run in WORK: generate the mutants first
            scratch_tree "$dir" "$module" "$tests"
            (cd "$dir" && generate_mutants)
        fi
        rm -rf "$dir/tests" && cp -r "$REPO/tests" "$dir/tests"
        (
            cd "$dir"
            declare -A passes=()
            while read -r name test; do
                # the test must pass on the unmutated code, or a "killed" below would mean nothing
                cp "$REPO/$module" "$module"
                if [ -z "${passes[$test]:-}" ]; then
                    nice -n 19 env PYTHONPATH="$dir" "$PY" -m pytest -x -q -p no:cacheprovider "$test" \
                        >/dev/null 2>&1 || { echo "   FAILS UNMUTATED  $test"; continue; }
                    passes[$test]=1
                fi
                "$MUTMUT" apply "$name" >/dev/null 2>&1
                if nice -n 19 env PYTHONPATH="$dir" timeout 600 "$PY" -m pytest -x -q -p no:cacheprovider \
                        "$test" >/dev/null 2>&1; then
                    echo "   survived  $name  ($test)"
                else
                    echo "   killed    $name  ($test)"
                fi
            done <<< "$claims"
            cp "$REPO/$module" "$module"
        )
        continue
    fi
    scratch_tree "$dir" "$module" "$tests"
    echo "== $group: $module against $tests (sample=${SAMPLE:-all}, seed=$SEED)"
    (
        cd "$dir"
        if [ "$SAMPLE" -gt 0 ]; then
            # generate every mutant and the test stats without running any mutant, then draw the sample
            generate_mutants
            "$MUTMUT" results --all true | awk -F: '{print $1}' | sed 's/^ *//' | grep -v '^$' | sort > all.txt
            "$PY" -c "import random,sys; n=[l.strip() for l in open('all.txt') if l.strip()]; \
random.Random($SEED).shuffle(n); print('\n'.join(sorted(n[:$SAMPLE])))" > sample.txt
            echo "   $(wc -l < all.txt) mutants, running a sample of $(wc -l < sample.txt)"
            nice -n 19 "$MUTMUT" run --max-children 1 $(cat sample.txt) > run.log 2>&1 || true
        else
            nice -n 19 "$MUTMUT" run --max-children 1 > run.log 2>&1 || true
        fi
        "$MUTMUT" results --all true > results.txt 2>/dev/null || true
        grep -E ': survived' results.txt | awk -F: '{print $1}' | sed 's/^ *//' > survivors.txt || true
        for status in killed survived timeout suspicious "no tests" skipped "not checked"; do
            printf '   %-12s %s\n' "$status" "$(grep -c ": $status\$" results.txt || true)"
        done
    )
done
