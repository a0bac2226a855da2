# summary.awk - the performance goals, from one run's JSON lines
# (build/bench/results.jsonl), as one table.  Run by `make bench`.
#
# The goals (issue 10): every guarantee kept, and then as fast as possible;
# at least 10x faster than the Rust original's design, and faster than
# Python filelock and Go gofrs/flock, all measured side by side.  Fair mode
# (issue 15): its costs against plain mode, and that nobody is overtaken.
#
#   awk -f bench/summary.awk build/bench/results.jsonl

function num(line, key,    m) {
    if (match(line, "\"" key "\":[-0-9.e]+")) {
        m = substr(line, RSTART, RLENGTH)
        sub(/^"[^"]*":/, "", m)
        return m + 0
    }
    return -1
}
function str(line, key,    m) {
    if (match(line, "\"" key "\":\"[^\"]*\"")) {
        m = substr(line, RSTART, RLENGTH)
        sub(/^"[^"]*":"/, "", m)
        sub(/"$/, "", m)
        return m
    }
    return ""
}
function row(what, got, goal) { printf "%-64s %-22s %s\n", what, got, goal }

/"bench":"uncontended"/ { same = num($0, "ratio_to_floor"); needed = num($0, "ratio_to_needed")
                          first = num($0, "existing_first_ratio"); fair_unc = num($0, "fair_ratio") }
/"bench":"contended"/ && /"variant":"cachelock"/ && /"hold_us":0,/ {
    cont = cont sep sprintf("%.2fx", num($0, "ratio_to_raw")); sep = " / " }
# Fair mode (issue 15): per hold time, the throughput ratios to plain mode
# at N = 2 / 4 / 8, the overtakes, and the longest waits beside plain's.
/"bench":"contended"/ && /"variant":"fair"/ {
    h = num($0, "hold_us")
    fratio[h] = fratio[h] fsep[h] sprintf("%.2fx", num($0, "ratio_to_plain")); fsep[h] = " / "
    fover += num($0, "overtake_share")
    fwait[h] = fwait[h] wsep[h] sprintf("%.1f", num($0, "longest_wait_ms")); wsep[h] = " / " }
/"bench":"contended"/ && /"variant":"cachelock"/ {
    h = num($0, "hold_us")
    pwait[h] = pwait[h] psep[h] sprintf("%.1f", num($0, "longest_wait_ms")); psep[h] = " / " }
/"bench":"contended"/ && /"variant":"mixed"/ {
    mixed = mixed msep sprintf("%.1f%%", 100 * num($0, "fair_share")); msep = " / "
    mover += num($0, "fair_overtakes") }
/"bench":"handoff_fair"/ { fhand = fhand fhsep sprintf("%s %.2fx", str($0, "waiter"), num($0, "ratio_to_plain")); fhsep = ", "
    if (str($0, "waiter") == "blocking") fhand_blocking = num($0, "ratio_to_plain") }
/"bench":"scale"/ { scale = sprintf("%.2fx", num($0, "same_ratio_to_first_level")); held = num($0, "held") }
/"bench":"memory"/ { mem = num($0, "bytes_per_held_lock") }
/"bench":"handoff"/ && /"holder":"library release"/ && !/"waiter":"blocking"/ {
    hand = hand hsep sprintf("%s %.2fx", str($0, "waiter"), num($0, "ratio_to_blocking")); hsep = ", " }
/"bench":"peers"/ { py = num($0, "python_filelock_us"); lib = num($0, "library_us")
                    f1 = num($0, "flock1_us"); run = num($0, "cachelock_run_us") }
/"bench":"status"/ { st_ms = num($0, "status_ms"); st_each = num($0, "holders_each_ms")
                     st_cli = num($0, "cli_ms"); st_n = num($0, "sources") }
# Rows of bench_peers' uncontended table; a skipped one has no "us".
/"bench":"peers_uncontended"/ && /"us":/ { us[str($0, "variant")] = num($0, "us")
                                          calls[str($0, "variant")] = num($0, "syscalls") }
END {
    printf "\nsummary of this run (ratios; see README.md, Benchmarks)\n\n"
    row("what", "measured", "goal")
    if (("rust_spawn_blocking" in us) && ("cachelock_same_source" in us))
        row("Rust original's design (create_dir_all + spawn_blocking), vs this library",
            sprintf("%.1fx", us["rust_spawn_blocking"] / us["cachelock_same_source"]), ">= 10x")
    if (("python_filelock" in us) && ("cachelock_same_source" in us))
        row("Python filelock acquire+release, vs this library",
            sprintf("%.2fx", us["python_filelock"] / us["cachelock_same_source"]), "> 1x")
    if (("go_gofrs_flock" in us) && ("cachelock_same_source" in us))
        row("Go gofrs/flock Lock+Unlock, vs this library",
            sprintf("%.2fx", us["go_gofrs_flock"] / us["cachelock_same_source"]), "> 1x")
    row("same source again, vs flock EX+UN on an open fd", sprintf("%.2fx", same), "")
    row("  ... vs the calls its guarantees need (bench_acquire)", sprintf("%.2fx", needed), "")
    row("first acquire of an existing source, vs open+flock+close", sprintf("%.2fx", first), "")
    row("contended throughput N = 2 / 4 / 8, vs raw flock loop", cont, "")
    row(sprintf("same source with %d held elsewhere, vs 1,000 held", held), scale, "flat (1.0x)")
    row("library heap per held lock", sprintf("%.0f bytes", mem), "")
    row("handoff after a library release, vs a blocking waiter", hand, "")
    row("cachelock run per invocation, vs flock(1)", sprintf("%.2fx", run / f1), "")
    if (st_ms > 0)
        row(sprintf("status of %d sources: library / command / per source", st_n),
            sprintf("%.0f / %.0f / %.0f ms", st_ms, st_cli, st_each), "")
    printf "\nfair mode (issue 15), N = 2 / 4 / 8 where there are three figures\n\n"
    row("what", "measured", "goal")
    row("uncontended fair acquire+release, vs plain", sprintf("%.2fx", fair_unc), "<= 1.2x")
    row("handoff p50 to a fair waiter, vs the same waiter not fair", fhand, "blocking <= 1.5x")
    row("overtakes among fair users (by the order of joining), all runs", sprintf("%.4f%%", 100 * fover), "0")
    row("throughput, 20 us critical sections, vs plain", fratio[20], ">= 0.6x")
    row("throughput, 200 us critical sections, vs plain", fratio[200], ">= 0.9x")
    row("throughput, bare increment, vs plain (a wake-up per grant)", fratio[0], "reported")
    row("longest wait at 200 us holds, ms: plain", pwait[200], "")
    row("  ... fair", fwait[200], "")
    row("fair half's share when half the users are plain (N = 4 / 8)", mixed, "reported")
    row("  ... overtakes among the fair half", sprintf("%d", mover), "0")
    printf "\n"
    n = split("cachelock_same_source cachelock_first_acquire open_flock_close rust_spawn_blocking", k, " ")
    got = ""
    for (i = 1; i <= n; i++)
        got = got (i > 1 ? " / " : "") ((k[i] in calls) && calls[k[i]] >= 0 ? sprintf("%.1f", calls[k[i]]) : "-")
    row("system calls: same source / first / o+f+c / Rust design", got, "")
}
