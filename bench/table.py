"""Renders bench/table.sh's results as issue 12's markdown table.

Input: one `section|key|value` line per figure (table.sh writes them).
Sections: run, healthz, publish:STORE, fanout:STORE, latency:STORE, instructions;
a store's publish and fan-out sections each become a row, so measuring
another store (or two instances) in the same run adds rows, not code here.
Usage: python3 bench/table.py RESULTS > bench/last-run.md"""
import re
import sys


class Section(dict):
    """key -> the last value given; .all(key) gives every value, in order."""

    def all(self, key):
        return self.get(key + "[]", [])


sections = {}
for raw in open(sys.argv[1]):
    section, key, value = raw.rstrip("\n").split("|", 2)
    entry = sections.setdefault(section, Section())
    entry[key] = value
    entry.setdefault(key + "[]", []).append(value)


def num(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def rate(x, unit):
    """47,512 -> '47.5k unit'; 1,401,000 -> '1.40M unit'."""
    if x >= 1e6:
        return f"{x / 1e6:.2f}M {unit}"
    return f"{x / 1000:.1f}k {unit}" if x >= 1000 else f"{x:.0f} {unit}"


def median(values):
    v = sorted(values)
    return (v[(len(v) - 1) // 2] + v[len(v) // 2]) / 2 if v else None


def pct(ratio):
    return f"{ratio * 100:.0f} %" if ratio else "—"


def field(line, name):
    m = re.search(rf"\b{name}=([\d.]+)", line or "")
    return float(m.group(1)) if m else None


def field_text(line, name):
    m = re.search(rf"\b{name}=(\S+)", line or "")
    return m.group(1) if m else "?"


def verdict(*checks):
    """'yes', or what is missed, in bold."""
    missed = [name for name, ok in checks if ok is False]
    if any(ok is None for _, ok in checks):
        return "?"
    return "yes" if not missed else "**no** (" + ", ".join(missed) + ")"


rows, notes = [], []
run = sections.get("run", Section())

h = sections.get("healthz")
if h:
    p_rps, n_rps, p_p99, n_p99 = (num(h.get(k)) for k in ("p_rps", "n_rps", "p_p99_ms", "n_p99_ms"))
    # Each round's ratio comes from two runs back to back; their median drifts less than the ratio of medians.
    ratios = [float(r) for r in h.all("ratio")]
    ratio = median(ratios)
    rows.append([
        "`GET /healthz`, wrk -t2 -c64",
        f"{rate(p_rps, 'req/s')}, p99 {p_p99:.2f} ms",
        f"nginx, 2 workers, `return 200`: {rate(n_rps, 'req/s')}, p99 {n_p99:.2f} ms",
        pct(ratio),
        "≥ 70 % of nginx, p99 ≤ nginx's",
        verdict(("ratio", ratio and ratio >= 0.70), ("p99", p_p99 <= n_p99)),
    ])
    rounds = "1 round" if h["rounds"] == "1" else f"{h['rounds']} rounds (medians)"
    notes.append(f"`GET /healthz`: {rounds} of {h['seconds']} s per server, provisiond then nginx; the ratio is the "
                 f"median of the rounds' ratios ({', '.join(pct(r) for r in ratios)}).")

for name, s in sections.items():
    if not name.startswith("publish:"):
        continue
    store = s["store"]
    # One wrk line per round; the ceiling measured before the first round and after each
    # (or one figure given for the store): each round's ratio uses the two around it.
    rounds = []
    for line in s.all("line"):
        requests, non2xx, rps, p99 = (field(line, k) for k in ("requests", "non2xx", "rps", "p99"))
        rounds.append((rps * (requests - non2xx) / requests if requests else 0, p99, non2xx))
    ceilings = [c for c in (num(v) for v in s.all("ceiling")) if c]
    per = num(s.get("rows_per_tenant"))
    ratios = []
    if per and ceilings:
        for i, (accepted, _, _) in enumerate(rounds):
            around = ceilings[i:i + 2] if len(ceilings) > len(rounds) else ceilings
            ratios.append(accepted / (sum(around) / len(around) / per))
    accepted, p99 = median(r[0] for r in rounds), median(r[1] for r in rounds)
    non2xx = sum(r[2] for r in rounds)
    ceiling = median(ceilings)
    cpu = num(s.get("cpu_us"))
    pg_cpu = num(s.get("pg_cpu_us"))
    instances = int(s.get("instances") or 1)
    ratio = median(ratios)
    cpu_text = f"{cpu:.0f} µs of provisiond CPU per tenant" + (f" ({instances} instances summed)" if instances > 1 else "")
    if pg_cpu is not None:
        cpu_text += f" + {pg_cpu:.0f} µs of PostgreSQL's"
    rows.append([
        f"`POST /tenants` ({store}), 3 subscriptions paused, 64 clients" + (f" split over {instances} instances" if instances > 1 else ""),
        f"{rate(accepted, 'tenants/s')}, {cpu_text}, p99 {p99:.1f} ms",
        f"{s.get('ceiling_label', '')}: {rate(ceiling, 'rows/s')} ÷ {per:g} rows per tenant = {rate(ceiling / per, 'tenants/s')}"
        if ratio else "not measured (BENCH_STORE_CEILING, BENCH_ROWS_PER_TENANT)",
        pct(ratio),
        "≤ 100 µs CPU per tenant; ≥ 40 % of the ceiling ÷ rows per tenant",
        verdict(("CPU", cpu <= 100), ("ceiling", None if ratio is None else ratio >= 0.40)),
    ])
    rounds_text = "1 round" if len(rounds) == 1 else f"{len(rounds)} rounds (medians)"
    notes.append(
        f"`POST /tenants` ({store}): {rounds_text} of {s['seconds'].split()[-1]} s, {int(s['tenants']):,} tenants, "
        f"{non2xx:.0f} answers not 2xx; the ceiling ran before the first round and after each "
        f"({', '.join(rate(c, 'rows/s') for c in ceilings)}), the ratio is the median of the rounds' ratios "
        f"({', '.join(pct(r) for r in ratios)}), each against the mean of the ceilings around it; "
        + (f"rows one publish writes, {s.get('rows_how', 'counted by triggers')} (+ insert, ~ update, − delete): {s['rows_detail']}."
           if s.get("rows_detail") else "rows per tenant not counted for this store.")
        + (f" {instances} instances on one database, one wrk -t1 -c{64 // instances} at each at the same time: tenants/s "
           f"summed (per instance, round by round: {', '.join(field_text(l, 'rps_each') for l in s.all('line'))}), "
           "p99 the higher of the two wrk's, CPU summed over the instances." if instances > 1 else "")
        + (f" PostgreSQL's CPU: its backends for this database and the WAL writer, checkpointer and background writer; "
           f"{int(s['rollbacks']):,} transactions rolled back over the run (a write run again after a serialization "
           f"failure, {int(s['rollbacks']) / int(s['tenants']):.2f} per tenant)." if s.get("rollbacks") else ""))

for name, s in sections.items():
    if not name.startswith("fanout:"):
        continue
    store, n, delivered, seconds = s["store"], int(s["tenants"]), int(float(s["delivered"])), float(s["seconds"])
    dps = delivered / seconds
    curl = num(s["curl_posts_per_s"])
    ratio = dps / curl if curl else None
    instances = int(s.get("instances") or 1)
    rows.append([
        f"fan-out ({store}), {n:,} tenants × 3 nginx receivers",
        rate(dps, "deliveries/s"),
        f"one libcurl-multi thread, {s['in_flight']} in flight, {s['payload_bytes']}-byte POSTs to the same nginx: {rate(curl, 'POST/s')}",
        pct(ratio),
        "≥ 50 %",
        verdict(("ratio", ratio and ratio >= 0.50), ("all delivered", delivered == 3 * n)),
    ])
    notes.append(f"fan-out ({store}): {delivered:,} of {3 * n:,} deliveries in {seconds:.2f} s from unpausing to an empty "
                 "backlog; the libcurl figure is the mean of a run just before and one just after."
                 + (f" {instances} instances, the tenants published through each in equal parts, all dispatching; "
                    f"delivered by each: {s.get('delivered_each', '?')}; the total counted in the database."
                    if instances > 1 else "")
                 + (f" Publishing the {n:,} tenants before, {int(s['publish_retried']):,} answers were 5xx and sent again."
                    if int(s.get("publish_retried") or 0) else ""))

for name, s in sections.items():
    if not name.startswith("latency:"):
        continue
    line = s["line"]
    p50, p99 = field(line, "median_ms"), field(line, "p99_ms")
    store = name.split(":", 1)[1]
    rows.append([
        f"publish → last of 3 acks, 100 tenants/s{f' ({store})' if store else ''}",
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms" if p99 is not None else line,
        "—", "—", "p99 ≤ 5 ms",
        verdict(("p99", None if p99 is None else p99 <= 5)),
    ])
    notes.append(f"latency: {line.removeprefix('latency: ')}.")

instructions = sections.get("instructions", Section())
for line in instructions.all("line"):
    m = re.match(r"(.*?)\s{2,}([\d,]+) instructions\s+([\d.]+) syscalls\s+per request \(n=(\d+)\)", line)
    if m:
        rows.append([f"instructions per {m.group(1)}, callgrind (n={int(m.group(4)):,})",
                     f"{m.group(2)} ({m.group(3)} syscalls)", "—", "—", "lower; compare at the same n", ""])
if "missing" in instructions:
    notes.append(f"instructions: not counted: {instructions['missing']}.")

print("## `make bench`: issue 12's table\n")
quick = " **BENCH_QUICK=1**: small runs, to check the script, not figures to compare." if run.get("quick") == "1" else ""
print(f"{run.get('date', '?')}, commit {run.get('commit', '?')}, release build, {run.get('cores', '?')} cores, "
      f"1/5/15-min load average {run.get('load_start', '?')} at the start, {run.get('load_end', '?')} at the end."
      f" Every limit was measured in this run, beside its figure.{quick}"
      + (f" PostgreSQL rows: {run['pg_server']}, on 127.0.0.1." if run.get("pg_server") else "") + "\n")
print("| figure | provisiond | limit in the same run | ratio | target | met |")
print("|---|---|---|---:|---|---|")
for row in rows:
    print("| " + " | ".join(row) + " |")
print()
for note in notes:
    print(f"- {note}")
