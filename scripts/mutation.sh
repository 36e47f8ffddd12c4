#!/usr/bin/env bash
# Mutation testing (mutmut 3) of the modules an examiner's result depends on. Not run in CI (slow); figures go in
# docs/testing.md. Each module runs against its own test files only, niced and single-threaded, in a scratch copy
# of the tree (mutmut writes its mutants/ folder there, never into the checkout).
#
#   bash scripts/mutation.sh [GROUP ...] [--sample N] [--seed S] [--work DIR]
#   bash scripts/mutation.sh [GROUP ...] --recheck [--work DIR]
#   bash scripts/mutation.sh GROUP --only GLOB [--only GLOB ...] [--work DIR]
#
# GROUPs (default: all): engines explain calibration alignment audit imagestore fileio signing signature_check
# integrity checkpoints private evaluative image_quality explanation_quality sharding analysis casework.
# A group's tests are those listed in PLAN plus its mutation pins, tests/<layer>/test_GROUP_pins.py and
# test_GROUP_pins_*.py, when they exist.
# Before any mutant runs, the group's tests must pass on the unmutated tree (baseline): a selection that fails
# already would "kill" every mutant, so the script stops with exit status 3 instead. Each mutant's test run is
# cut off after 10 x its tests' clean duration + 10 s (mutmut's timeout_multiplier/constant; shown as timeout).
# --sample N runs a seeded random sample of N of a group's mutants (all are generated; the sample is drawn from the
# sorted list of mutant names with Python's random.Random(S), so the same seed gives the same sample).
# --only runs just the mutants whose names match a GLOB (mutmut's fnmatch, e.g. '*x__missing_row__*'): the
# functions a fix changed, after a full run of the code before it.
# --recheck takes the survivors of an earlier run that scripts/mutation_survivors.txt says a new test kills, applies
# each to the scratch tree with `mutmut apply`, runs that test from the checkout as it is now (after checking it
# passes unmutated) and prints killed/survived: a survivor shown killed without rerunning the whole sample. Without
# an earlier run in WORK it generates the group's mutants first (no mutant is run).
# MUTATION_TESTS="FILE ..." replaces the group's test selection (to try a faster one before it goes into PLAN).
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
ONLY=()
GROUPS_=()
while [ $# -gt 0 ]; do
    case "$1" in
        --sample) SAMPLE=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --work) WORK=$2; shift 2 ;;
        --recheck) RECHECK=1; shift ;;
        --only) ONLY+=("$2"); shift 2 ;;
        *) GROUPS_+=("$1"); shift ;;
    esac
done

# group -> "module file|test files" (a module is mutated against these tests only)
declare -A PLAN=(
    [engines]="xfr_desktop/core/algorithm1_engines.py|tests/core/test_engines.py"
    [explain]="xfr_desktop/core/explain.py|tests/core/test_engines.py tests/gui/test_explanation_state.py"
    [calibration]="xfr_desktop/core/calibration.py|tests/core/test_calibration.py tests/core/test_pinned_parameters.py"
    [alignment]="xfr_desktop/core/alignment.py|tests/core/test_alignment.py"
    [audit]="xfr_desktop/store/audit.py|tests/store/test_audit.py tests/core/test_pinned_parameters.py"
    [imagestore]="xfr_desktop/store/imagestore.py|tests/store/test_store.py tests/store/test_store_durability.py"
    [fileio]="xfr_desktop/core/fileio.py|tests/store/test_store_durability.py tests/core/test_calibration.py tests/core/test_imageio.py tests/report/test_signing.py"
    [signing]="xfr_desktop/report/signing.py|tests/report/test_signing.py tests/core/test_pinned_parameters.py"
    [signature_check]="xfr_desktop/report/signature_check.py|tests/report/test_signing.py tests/core/test_pinned_parameters.py"
    # issue 28: what decides which evidence is trusted and what the examiner reads
    # (test_integrity.py and test_forged_bindings_and_hostile_files.py attack through the command line, each test
    # on a case the model analysed, some in child processes: a mutant that survives costs every one of them, minutes
    # on two shared cores, and the second file's wall-time bounds fail under that load without any mutant; these two
    # groups run against their pins, which test the same functions in-process)
    [integrity]="xfr_desktop/store/integrity.py|tests/store/test_store_migrations.py"
    [checkpoints]="xfr_desktop/store/checkpoints.py|"
    [private]="xfr_desktop/store/private.py|tests/security/test_private_files.py"
    [evaluative]="xfr_desktop/core/evaluative.py|tests/core/test_evaluative.py tests/report/test_examiner_reads.py"
    [image_quality]="xfr_desktop/core/image_quality.py|tests/core/test_image_quality.py tests/report/test_examiner_reads.py"
    # (test_explanation_quality.py's other tests explain real pairs with the bundled model: minutes per clean run;
    # the pins run the driver on the tiny model at 64 px)
    [explanation_quality]="xfr_desktop/core/evaluation/explanation_quality.py|tests/core/test_explanation_quality.py::test_swap_changes_only_the_box_and_falls_back_to_an_alpha_blend tests/core/test_explanation_quality.py::test_swap_game_on_a_model_that_only_sees_the_mouth tests/core/test_explanation_quality.py::test_mass_ratio_and_pointing_by_hand tests/core/test_explanation_quality.py::test_argmax_statistics_against_hand_computed_references tests/core/test_explanation_quality.py::test_residual_correlation_against_numpy tests/core/test_explanation_quality.py::test_randomization_reinitializes_decoder_and_the_last_quarter_of_the_backbone tests/core/test_explanation_quality.py::test_images_without_a_face_are_counted_and_no_usable_pair_is_a_clear_error"
    # (the torchrun and --workers tests start the mutated module in child processes, where mutmut's trampolines
    # cannot find their configuration: the clean run fails and the group is refused; those tests are left out)
    [sharding]="xfr_desktop/core/evaluation/sharding.py|tests/cli/test_sharded_evaluation.py::test_shards_cover_the_items_once_and_differ_by_at_most_one"
    # (test_analysis.py's other tests analyse with the default trust check or the previous bundled model, seconds
    # each on two cores; the pins call the same use case in-process, the trust check in a file of its own)
    [analysis]="xfr_desktop/analysis.py|tests/usecases/test_analysis.py::test_cancelling_saves_nothing_and_marks_the_comparison tests/usecases/test_analysis.py::test_a_failure_is_recorded_as_the_comparison_status"
    # (test_case_cli.py drives the CLI with analyses, slow under mutmut; the pins test the same functions in-process
    # and kill the same mutants: 340 of 340 non-equivalent either way)
    [casework]="xfr_desktop/casework.py|"
)
# tests a group's runs leave out (pytest -k): ones that run the module in a child process (see sharding above)
declare -A EXCLUDE=(
    [sharding]="not failing_workers"
)
ORDER=(engines explain calibration alignment audit imagestore fileio signing signature_check
       integrity checkpoints private evaluative image_quality explanation_quality sharding analysis casework)
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
        echo "pytest_add_cli_args = [\"-p\", \"no:cacheprovider\", \"-x\", \"-q\"${4:+, \"-k\", \"$4\"}]"
        echo "also_copy = [\"models\", \"resources\"]"
        echo "timeout_multiplier = 10.0"
        echo "timeout_constant = 10.0"
    } >> "$1/pyproject.toml"
}

# group_tests GROUP: the group's test files, with its mutation pins when they exist
group_tests() {
    local spec=${PLAN[$1]:?unknown group $1} pins
    pins=$(cd "$REPO" && ls tests/*/test_"$1"_pins.py tests/*/test_"$1"_pins_*.py 2>/dev/null || true)
    echo "${spec#*|}${pins:+ $pins}"
}

# baseline DIR TESTS [KEXPR]: the selected tests must pass on the unmutated scratch tree, or the run would mean
# nothing
baseline() {
    if ! (cd "$1" && nice -n 19 env PYTHONPATH="$1" "$PY" -m pytest -x -q -p no:cacheprovider $2 ${3:+-k "$3"} \
            > "$1/baseline.log" 2>&1); then
        echo "   REFUSED: the selected tests fail without any mutant (see $1/baseline.log):" >&2
        tail -n 5 "$1/baseline.log" >&2
        exit 3
    fi
    echo "   baseline: $(tail -n 1 "$1/baseline.log")"
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
    tests=${MUTATION_TESTS:-$(group_tests "$group")}
    dir=$WORK/$group
    if [ "$RECHECK" = 1 ]; then
        # survivors a new test is said to kill (scripts/mutation_survivors.txt): apply each, run that test
        claims=$(awk -v g="$group" '$1 == g && $3 == "killed-by" {print $2 " " $4}' "$REPO/scripts/mutation_survivors.txt")
        [ -n "$claims" ] || continue
        echo "== $group: recheck of $(echo "$claims" | wc -l) survivors said to be killed by a new test"
        if [ ! -d "$dir/mutants" ]; then   # no earlier run in WORK: generate the mutants first
            scratch_tree "$dir" "$module" "$tests" "${EXCLUDE[$group]:-}"
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
    scratch_tree "$dir" "$module" "$tests" "${EXCLUDE[$group]:-}"
    echo "== $group: $module against $tests${EXCLUDE[$group]:+ (-k \"${EXCLUDE[$group]}\")} (sample=$([ "$SAMPLE" -gt 0 ] && echo "$SAMPLE" || echo all), seed=$SEED${ONLY[*]:+, only ${ONLY[*]}})"
    baseline "$dir" "$tests" "${EXCLUDE[$group]:-}"
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
        elif [ ${#ONLY[@]} -gt 0 ]; then
            nice -n 19 "$MUTMUT" run --max-children 1 "${ONLY[@]}" > run.log 2>&1 || true
        else
            nice -n 19 "$MUTMUT" run --max-children 1 > run.log 2>&1 || true
        fi
        if grep -q -e "Failed to run clean test" -e "failed to collect stats" run.log; then
            echo "   REFUSED by mutmut: its clean run of the tests failed (see $dir/run.log)" >&2
            exit 3
        fi
        "$MUTMUT" results --all true > results.txt 2>/dev/null || true
        grep -E ': survived' results.txt | awk -F: '{print $1}' | sed 's/^ *//' > survivors.txt || true
        for status in killed survived timeout suspicious "no tests" skipped "not checked"; do
            printf '   %-12s %s\n' "$status" "$(grep -c ": $status\$" results.txt || true)"
        done
    )
done
