#!/bin/bash
# run.sh - mutation testing: break each property of README's "Semantics"
# table on purpose, one break at a time, and check that a test fails.
#
#   tests/mutants/run.sh [-j JOBS] [-t SECONDS] [-k] [-l] [-T TESTS] [ID...]
#
#   -j JOBS     mutations run in parallel, each in its own scratch copy
#               (default $MUTANTS_JOBS, else 2)
#   -t SECONDS  time limit of one test program (default $MUTANTS_TIMEOUT,
#               else 120); a program that hits it counts as failed
#   -k          keep the scratch directory (its path is printed)
#   -l          list the mutations and exit
#   -T TESTS    run these tests (e.g. "test_pool torture_chaos:4") instead of
#               the ones the list names: which test would catch a survivor?
#   ID...       run only these mutations (then rows without one are not
#               reported)
#
# The breaks are in tests/mutants/mutations.txt (its header says the
# format): each names a row of the table, a file, a snippet that must occur
# exactly once and its replacement, and the test programs that must catch
# it.  The source tree is copied once (git's tracked and unignored files,
# as a clean clone has them) into one scratch copy per job; a mutation is
# applied there, only what it needs is rebuilt (make BUILD=...), the named
# programs run one after another under a time limit, and the file is put
# back.  A program is stopped at its first failing case: one is enough.
#
# Results: KILLED (a named test failed), SURVIVED (all passed: the tests do
# not prove the property), BUILD-FAILED (counted as killed, but the
# mutation itself is wrong and should be fixed), STALE (the snippet is not
# in the file exactly once, or the file or a test is gone: the list must
# follow the code).  Before any mutation, the named programs run on the
# unchanged tree; one that fails there makes every result meaningless and
# is reported.
#
# Exit status: 0 when every mutation was killed and every row of the table
# has a mutation; 1 otherwise; 2 on a usage or setup error.
set -u
unset MAKEFLAGS MFLAGS MAKELEVEL GNUMAKEFLAGS    # inner makes are not sub-makes

self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
top=$(cd "$(dirname "$0")/../.." && pwd)
list=$top/tests/mutants/mutations.txt
readme=$top/README.md

die() { printf 'mutants: %s\n' "$*" >&2; exit 2; }
now_us() { local t=${EPOCHREALTIME/./}; echo "${t#0}"; }

# ---- one test program, stopped at its first failing case ------------------

# Kill every process of session $1 (a test program and whatever it left
# behind, even in process groups of its own).  A session id cannot be
# reused while any process is still in the session.
kill_session() {
    local sid=$1 f stat pid found pass
    [ -n "$sid" ] || return 0
    for pass in 1 2 3 4 5; do
        found=0
        for f in /proc/[0-9]*/stat; do
            IFS= read -r stat 2>/dev/null < "$f" || continue
            set -- ${stat##*) }     # state ppid pgrp session ...
            [ "${4:-}" = "$sid" ] || continue
            pid=${f#/proc/}
            kill -KILL "${pid%/stat}" 2>/dev/null && found=1
        done
        [ $found = 1 ] || return 0
    done
}

# run_prog TOKEN LOG: run one test program of the scratch copy in $tree,
# built in $build.  TOKEN is test_x (tests/test_x.c), tNNNN
# (tests/tNNNN-*.sh), or NAME:ARG,ARG (a program under tests/ with
# arguments, e.g. torture_chaos:4).  Sets $result (pass, fail, timeout) and
# $detail (the first failing case, or the exit status).
run_prog() {
    local token=$1 log=$2 name args cmd sidf st first
    name=${token%%:*}
    args=
    [[ $token == *:* ]] && args=${token#*:}
    case $name in
        t[0-9][0-9][0-9][0-9]) cmd=(sh "$(echo "$tree/tests/$name"-*.sh)") ;;
        *) cmd=("$build/tests/$name" ${args//,/ }) ;;
    esac
    sidf=$log.sid
    rm -f "$sidf"
    {
        (cd "$tree" && BUILD=$build TMPDIR=$tmp CC=${CC:-cc} exec setsid -w sh -c \
            'echo $$ > "$0"; t=$1; shift; exec timeout -k 5 "$t" "$@"' "$sidf" "$limit" "${cmd[@]}" \
            </dev/null 2>&1)
        echo "@@status $?"
    } 2>/dev/null | while IFS= read -r line; do
        printf '%s\n' "$line"
        case $line in
            'not ok'*) [ -s "$sidf" ] && kill_session "$(cat "$sidf")" ;;
        esac
    done > "$log"
    [ -s "$sidf" ] && kill_session "$(cat "$sidf")"
    st=$(sed -n 's/^@@status //p' "$log")
    first=$(grep -m1 '^not ok' "$log")
    if [ -n "$first" ]; then
        result=fail
        first=${first#not ok }
        detail="$name: ${first#* - }"
    elif [ "$st" = 124 ] || [ "$st" = 137 ]; then
        result=timeout
        detail="$name: no result within $limit s"
    elif [ "$st" != 0 ]; then
        result=fail
        detail="$name: exit status $st"
    else
        result=pass
        detail=
    fi
}

# Make targets that a list of test tokens needs.
targets_for() {
    local token name
    for token in "$@"; do
        name=${token%%:*}
        case $name in
            t[0-9][0-9][0-9][0-9]) echo "$build/cachelock" ;;
            *) echo "$build/tests/$name" ;;
        esac
    done | sort -u
}

# Use scratch slot $1 (0-based) for the commands that follow.
use_slot() {
    slotdir=$root/s$1
    tree=$slotdir/tree
    build=$slotdir/build
    tmp=$slotdir/tmp
}

# ---- worker modes (run by xargs, one scratch slot each) --------------------

if [ "${1:-}" = --baseline ] || [ "${1:-}" = --mutant ]; then
    mode=$1 arg=$2
    root=$MUTANTS_ROOT
    limit=$MUTANTS_LIMIT
    use_slot "${SLOT:-0}"
    if [ "$mode" = --baseline ]; then
        mkdir -p "$root/baseline"
        run_prog "$arg" "$root/baseline/${arg//[:,\/]/_}.log"
        printf '%s\037%s\n' "$result" "$detail" > "$root/baseline/${arg//[:,\/]/_}.result"
        exit 0
    fi

    m=$root/m/$arg
    id=$(cat "$m/id")
    file=$(cat "$m/file")
    read -r -a tests < "$m/tests"
    t0=$(now_us)
    status= detail=
    IFS= read -r -d '' content < "$tree/$file"
    IFS= read -r -d '' find < "$m/find"
    IFS= read -r -d '' repl < "$m/replace"
    without=${content//"$find"/}
    count=$(( (${#content} - ${#without}) / ${#find} ))
    if [ "$count" != 1 ]; then
        status=STALE
        detail="the snippet occurs $count times in $file"
    else
        cp -p "$tree/$file" "$m/original"
        printf '%s' "${content/"$find"/"$repl"}" > "$tree/$file"
        # shellcheck disable=SC2046
        if ! make -s -C "$tree" BUILD="$build" ${CC:+CC="$CC"} $(targets_for "${tests[@]}") \
                > "$m/build.log" 2>&1; then
            status=BUILD-FAILED
            detail=$(grep -m1 -E 'error|Error' "$m/build.log")
        else
            status=SURVIVED
            skipped=
            for t in "${tests[@]}"; do
                if grep -qx -- "$t" "$root/broken" 2>/dev/null; then
                    skipped="$skipped $t"
                    continue
                fi
                run_prog "$t" "$m/${t//[:,\/]/_}.log"
                if [ "$result" != pass ]; then
                    status=KILLED
                    break
                fi
            done
            if [ $status = SURVIVED ] && [ -n "$skipped" ]; then
                status=UNTESTED
                detail="every test that ran passed; not run (fail unchanged):$skipped"
            fi
        fi
        # Put the file back; its new time stamp makes the next build
        # recompile it.
        cat "$m/original" > "$tree/$file"
    fi
    t1=$(now_us)
    secs=$(( (t1 - t0) / 100000 ))
    secs="$((secs / 10)).$((secs % 10))"
    printf '%s\037%s\037%s\n' "$status" "$detail" "$secs" > "$m/result"
    printf '  %-12s %-44s %6ss  %s\n' "$status" "$id" "$secs" "$detail"
    exit 0
fi

# ---- the main program ------------------------------------------------------

jobs=${MUTANTS_JOBS:-2}
limit=${MUTANTS_TIMEOUT:-120}
keep=0
list_only=0
override=
while getopts 'j:t:klT:h' opt; do
    case $opt in
        j) jobs=$OPTARG ;;
        t) limit=$OPTARG ;;
        k) keep=1 ;;
        l) list_only=1 ;;
        T) override=$OPTARG ;;
        h) sed -n '2,/^set -u/p' "$0" | sed -e '/^set -u/d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) die "usage: $0 [-j JOBS] [-t SECONDS] [-k] [-l] [-T TESTS] [ID...]" ;;
    esac
done
shift $((OPTIND - 1))
[[ $jobs =~ ^[1-9][0-9]*$ ]] || die "-j wants a positive number, not '$jobs'"
[[ $limit =~ ^[1-9][0-9]*$ ]] || die "-t wants a positive number of seconds, not '$limit'"
[ -f "$list" ] || die "no mutation list at $list"
[ -f "$readme" ] || die "no README.md at $readme"
for tool in make setsid timeout xargs; do
    command -v $tool >/dev/null || die "needs $tool"
done

# The rows of README's Semantics table: names and "Tested in" cells.
rows=() tested_in=()
in_table=0
while IFS= read -r line; do
    case $line in
        '## Semantics'*) in_table=1; continue ;;
        '## '*) [ $in_table = 1 ] && break ;;
    esac
    [ $in_table = 1 ] || continue
    if [[ $line != '|'* ]]; then
        [ ${#rows[@]} -gt 0 ] && break
        continue
    fi
    cell=${line#|}
    cell=${cell%%|*}
    cell=${cell#"${cell%%[! ]*}"}
    cell=${cell%"${cell##*[! ]}"}
    case $cell in Property|---*|'') continue ;; esac
    rows+=("$cell")
    last=${line%|}
    tested_in+=("${last##*|}")
done < "$readme"
[ ${#rows[@]} -gt 0 ] || die "found no Semantics table in $readme"

# ---- parse the mutation list -----------------------------------------------

ids=() m_row=() m_file=() m_tests=() m_find=() m_repl=() m_note=()
n=-1 state= lineno=0 errors=0
parse_error() { printf 'mutants: %s:%s: %s\n' "${list#"$top"/}" "$lineno" "$*" >&2; errors=$((errors + 1)); }
while IFS= read -r line || [ -n "$line" ]; do
    lineno=$((lineno + 1))
    case $state in
        find|replace)
            if [ $state = find ] && [ "$line" = 'replace:' ]; then state=replace; continue; fi
            if [ "$line" = end ]; then state=; continue; fi
            # Lines are joined with newlines; the last one has none.
            if [ $state = find ]; then
                if [ -z "$have_find" ]; then m_find[n]=$line; have_find=1
                else m_find[n]+=$'\n'$line; fi
            else
                if [ -z "$have_repl" ]; then m_repl[n]=$line; have_repl=1
                else m_repl[n]+=$'\n'$line; fi
            fi
            continue ;;
    esac
    value=${line#*:}
    value=${value#"${value%%[! ]*}"}
    case $line in
        ''|'#'*) ;;
        'id:'*)
            n=$((n + 1))
            ids[n]=$value m_row[n]= m_file[n]= m_tests[n]= m_find[n]= m_repl[n]= m_note[n]=
            [[ $value =~ ^[a-z0-9][a-z0-9-]*$ ]] || parse_error "id '$value': use lowercase letters, digits and -"
            for ((i = 0; i < n; i++)); do
                [ "${ids[i]}" != "$value" ] || parse_error "id '$value' used twice"
            done ;;
        'row:'*|'file:'*|'tests:'*|'note:'*|'find:')
            if [ $n -lt 0 ]; then parse_error "'${line%%:*}:' before the first id:"; continue; fi
            case $line in
                row:*) m_row[n]=$value ;;
                file:*) m_file[n]=$value ;;
                tests:*) m_tests[n]=$value ;;
                note:*) m_note[n]+=${m_note[n]:+ }$value ;;
                find:) state=find have_find= have_repl= ;;
            esac ;;
        *) parse_error "cannot read this line (fields: id: row: file: tests: note: find: replace: end)" ;;
    esac
done < "$list"
[ -z "$state" ] || parse_error "the last find:/replace: block has no end"
nmut=$((n + 1))
for ((i = 0; i < nmut; i++)); do
    lineno="mutation ${ids[i]}"
    [ -n "${m_row[i]}" ] || parse_error "no row:"
    [ -n "${m_file[i]}" ] || parse_error "no file:"
    [ -n "${m_tests[i]}" ] || parse_error "no tests:"
    [ -n "${m_find[i]}" ] || parse_error "no find: block"
    [ "${m_find[i]}" != "${m_repl[i]}" ] || parse_error "the replacement is the snippet itself"
done
[ $errors = 0 ] || exit 2
if [ -n "$override" ]; then
    for ((i = 0; i < nmut; i++)); do m_tests[i]=$override; done
fi

if [ $list_only = 1 ]; then
    for ((i = 0; i < nmut; i++)); do
        printf '%-44s %-30s %s\n' "${ids[i]}" "${m_row[i]}" "${m_tests[i]}"
    done
    exit 0
fi

# Which mutations to run.
selected=()
if [ $# -gt 0 ]; then
    for want in "$@"; do
        found=
        for ((i = 0; i < nmut; i++)); do
            [ "${ids[i]}" = "$want" ] && { selected+=("$i"); found=1; }
        done
        [ -n "$found" ] || die "no mutation '$want' (see -l)"
    done
else
    for ((i = 0; i < nmut; i++)); do selected+=("$i"); done
fi

# ---- scratch copies ----------------------------------------------------------

root=$(mktemp -d "${TMPDIR:-/tmp}/cachelock-mutants.XXXXXX") || die "cannot make a scratch directory"
# Tests that drop privileges work in TMPDIR too: open it like /tmp.
chmod 755 "$root"
cleanup() {
    if [ $keep = 1 ]; then
        echo "scratch directory kept: $root"
    else
        chmod -R u+rwx "$root" 2>/dev/null
        rm -rf "$root"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The tree as a clean clone has it: tracked files plus new unignored ones,
# taken from the working tree, never the build directories.
mkdir -p "$root/s0/tree" "$root/s0/tmp" "$root/m"
chmod 1777 "$root/s0/tmp"
if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$top" && git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done |
        tar --null -T - -cf -) | tar -xf - -C "$root/s0/tree" || die "cannot copy the tree"
else
    (cd "$top" && tar --exclude='./build' --exclude='./build-*' -cf - .) |
        tar -xf - -C "$root/s0/tree" || die "cannot copy the tree"
fi
for ((s = 1; s < jobs; s++)); do
    mkdir -p "$root/s$s/tmp"
    chmod 1777 "$root/s$s/tmp"
    cp -a "$root/s0/tree" "$root/s$s/tree"
done

# Validate each selected mutation against the copy; write the runnable
# ones out for the workers.
stale=()
declare -A needed=()
runnable=()
for i in "${selected[@]}"; do
    why=
    f=$root/s0/tree/${m_file[i]}
    if [ ! -f "$f" ]; then
        why="no file ${m_file[i]}"
    else
        IFS= read -r -d '' content < "$f"
        without=${content//"${m_find[i]}"/}
        count=$(( (${#content} - ${#without}) / ${#m_find[i]} ))
        [ "$count" = 1 ] || why="the snippet occurs $count times in ${m_file[i]}"
    fi
    for t in ${m_tests[i]}; do
        name=${t%%:*}
        case $name in
            t[0-9][0-9][0-9][0-9]) ls "$root/s0/tree/tests/$name"-*.sh >/dev/null 2>&1 || why="${why:+$why; }no test $name" ;;
            *) [ -f "$root/s0/tree/tests/$name.c" ] || why="${why:+$why; }no test $name" ;;
        esac
    done
    known=
    for r in "${rows[@]}"; do [ "$r" = "${m_row[i]}" ] && known=1; done
    [ -n "$known" ] || why="${why:+$why; }no row '${m_row[i]}' in README's Semantics table"
    mkdir -p "$root/m/$i"
    if [ -n "$why" ]; then
        stale+=("$i")
        printf 'STALE\037%s\037-\n' "$why" > "$root/m/$i/result"
        continue
    fi
    printf '%s' "${ids[i]}" > "$root/m/$i/id"
    printf '%s' "${m_file[i]}" > "$root/m/$i/file"
    printf '%s\n' "${m_tests[i]}" > "$root/m/$i/tests"
    printf '%s' "${m_find[i]}" > "$root/m/$i/find"
    printf '%s' "${m_repl[i]}" > "$root/m/$i/replace"
    for t in ${m_tests[i]}; do needed[$t]=1; done
    runnable+=("$i")
done

export MUTANTS_ROOT=$root MUTANTS_LIMIT=$limit
start=$(now_us)
echo "mutants: ${#selected[@]} mutations of $(basename "$top") (${#runnable[@]} runnable), $jobs at a time, in $root"

# Build every program the mutations name, in each copy.
if [ ${#runnable[@]} -gt 0 ]; then
    echo "mutants: building the unchanged tree"
    pids=()
    for ((s = 0; s < jobs; s++)); do
        use_slot $s
        # shellcheck disable=SC2046
        make -s -C "$tree" BUILD="$build" ${CC:+CC="$CC"} $(targets_for "${!needed[@]}") \
            > "$slotdir/build.log" 2>&1 &
        pids+=($!)
    done
    for ((s = 0; s < jobs; s++)); do
        if ! wait "${pids[s]}"; then
            cat "$root/s$s/build.log" >&2
            die "the unchanged tree does not build"
        fi
    done

    # The named programs must pass on the unchanged tree.
    echo "mutants: running the named tests on the unchanged tree"
    printf '%s\n' "${!needed[@]}" | sort |
        xargs -P "$jobs" -n 1 --process-slot-var=SLOT "$BASH" "$self" --baseline
    : > "$root/broken"
    for t in $(printf '%s\n' "${!needed[@]}" | sort); do
        IFS=$'\037' read -r res det < "$root/baseline/${t//[:,\/]/_}.result"
        if [ "$res" != pass ]; then
            echo "$t" >> "$root/broken"
            printf 'mutants: %s fails on the unchanged tree (%s); mutations it names are judged by the others\n' \
                "$t" "$det" >&2
            sed -e '/^ok /d' -e 's/^/    /' "$root/baseline/${t//[:,\/]/_}.log" | head -20 >&2
        fi
    done

    echo "mutants: applying the mutations"
    printf '%s\n' "${runnable[@]}" |
        xargs -P "$jobs" -n 1 --process-slot-var=SLOT "$BASH" "$self" --mutant
fi

# ---- report ----------------------------------------------------------------

print_result() {     # ID RESULT SECONDS DETAIL
    local secs=$3
    [[ $secs == *[0-9] ]] && secs=${secs}s
    printf '  %-42s %-12s %7s  %s\n' "$1" "$2" "$secs" "$4"
}

end=$(now_us)
declare -A count=()
survived=() builds=()
printf '\n%-44s %-12s %7s  %s\n' "mutation" "result" "time" "caught by (first failing test), or why not"
for r in "${!rows[@]}"; do
    printed=
    for i in "${selected[@]}"; do
        [ "${m_row[i]}" = "${rows[r]}" ] || continue
        if [ -z "$printed" ]; then printf '%s\n' "-- ${rows[r]}"; printed=1; fi
        IFS=$'\037' read -r res det secs < "$root/m/$i/result" 2>/dev/null || { res=NOT-RUN det= secs=-; }
        count[$res]=$(( ${count[$res]:-0} + 1 ))
        case $res in
            SURVIVED|UNTESTED|NOT-RUN) survived+=("$i") ;;
            BUILD-FAILED) builds+=("$i") ;;
        esac
        if [ "$res" = KILLED ] && [[ " ${tested_in[r]} " != *"\`${det%%:*}\`"* ]] &&
           [[ ${tested_in[r]} != *' all '* ]]; then
            det="$det  [README's row does not name ${det%%:*}]"
        fi
        [ "$res" = SURVIVED ] && det="none of: ${m_tests[i]}"
        print_result "${ids[i]}" "$res" "$secs" "$det"
    done
done
printed=
for i in "${selected[@]}"; do      # mutations of rows that are not in the table
    known=
    for r in "${rows[@]}"; do [ "$r" = "${m_row[i]}" ] && known=1; done
    [ -n "$known" ] && continue
    if [ -z "$printed" ]; then printf '%s\n' "-- (rows not in README)"; printed=1; fi
    IFS=$'\037' read -r res det secs < "$root/m/$i/result"
    count[$res]=$(( ${count[$res]:-0} + 1 ))
    print_result "${ids[i]}" "$res" "$secs" "$det"
done

uncovered=()
if [ $# -eq 0 ]; then
    for r in "${rows[@]}"; do
        have=
        for ((i = 0; i < nmut; i++)); do [ "${m_row[i]}" = "$r" ] && have=1; done
        [ -n "$have" ] || uncovered+=("$r")
    done
fi

secs=$(( (end - start) / 1000000 ))
printf '\nmutants: %d killed, %d survived, %d untested, %d build failed (counted as killed), %d stale; %d s\n' \
    "${count[KILLED]:-0}" "${count[SURVIVED]:-0}" "$(( ${count[UNTESTED]:-0} + ${count[NOT-RUN]:-0} ))" \
    "${count[BUILD-FAILED]:-0}" "${count[STALE]:-0}" "$secs"
fail=0
if [ ${#survived[@]} -gt 0 ]; then
    fail=1
    echo "mutants: these breaks pass every test that ran (a test that fails on the unchanged tree is not run):"
    for i in "${survived[@]}"; do
        printf '    %s (%s, %s): %s\n' "${ids[i]}" "${m_row[i]}" "${m_file[i]}" "${m_note[i]:-}"
    done
fi
if [ ${#builds[@]} -gt 0 ]; then
    echo "mutants: these mutations do not compile; fix them in ${list#"$top"/} (-k keeps the build logs):"
    for i in "${builds[@]}"; do printf '    %s\n' "${ids[i]}"; done
fi
if [ "${count[STALE]:-0}" -gt 0 ]; then
    fail=1
    echo "mutants: stale mutations: the code or the tests moved on; update ${list#"$top"/}"
fi
if [ ${#uncovered[@]} -gt 0 ]; then
    fail=1
    echo "mutants: rows of README's Semantics table without a mutation:"
    printf '    %s\n' "${uncovered[@]}"
fi
if [ -s "$root/broken" ]; then
    fail=1
    echo "mutants: tests that fail on the unchanged tree: $(tr '\n' ' ' < "$root/broken")"
fi
[ $fail = 0 ] && echo "mutants: every break was caught"
exit $fail
