"""Where a path's instructions go: workload minus baseline callgrind profile, per request.

Usage: python3 bench/callgrind_diff.py WORKLOAD.out BASELINE.out N [--top 40] [--inclusive]

Runs callgrind_annotate on both files (files kept by
`INSTRUCTIONS_KEEP=dir bench/instructions.sh`), subtracts function by function,
divides by N, demangles Swift names (`swift demangle`), and prints
  - the cost per request grouped by kind (exclusive costs: every instruction once),
  - the top functions by exclusive cost, and with --inclusive by inclusive cost
    (a function and everything it calls; these overlap, so do not add them up).
Syscalls per request are shown beside each (under valgrind clock_gettime is a
real syscall, natively it goes through the vDSO).
"""
import argparse
import re
import shutil
import subprocess
import sys

LINE = re.compile(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?([\d,.]+)\s+(?:\([^)]*\)\s+)?([\d,.]+)\s+(?:\([^)]*\)\s+)?(.*)$")


def annotate(path, inclusive):
    out = subprocess.run(["callgrind_annotate", "--threshold=100", f"--inclusive={'yes' if inclusive else 'no'}", path],
                         capture_output=True, text=True, check=True).stdout
    costs = {}
    started = False
    for line in out.splitlines():
        if "file:function" in line:
            started = True
            continue
        if not started:
            continue
        m = LINE.match(line)
        if not m:
            continue
        ir = int(m.group(1).replace(",", ""))
        sc = m.group(2)
        sc = 0 if sc == "." else int(sc.replace(",", ""))
        name = m.group(4).strip()
        a, b = costs.get(name, (0, 0))
        costs[name] = (a + ir, b + sc)
    return costs


def demangle(names):
    tool = shutil.which("swift-demangle") or shutil.which("swift")
    mangled = sorted({m for n in names for m in re.findall(r"\$s[\w$]+", n)})
    if not tool or not mangled:
        return {}
    cmd = [tool] + (["demangle"] if tool.endswith("swift") else []) + ["--simplified", "--compact"]
    out = subprocess.run(cmd, input="\n".join(mangled), capture_output=True, text=True).stdout.splitlines()
    return dict(zip(mangled, out)) if len(out) == len(mangled) else {}


def pretty(name, table):
    def repl(m):
        return table.get(m.group(0), m.group(0))
    name = re.sub(r"\$s[\w$]+", repl, name)
    name = re.sub(r"\s*\[/[^\]]*/([^/\]]+)\]$", r"  [\1]", name)
    return re.sub(r"^(\?\?\?|\S*\.(c|h|S|cc|cpp|swift)):", "", name)


# (category, test on the raw name incl. object) — first match wins.
CATEGORIES = [
    ("SQLite (library)", r"libsqlite3"),
    ("libcurl / nghttp2 / TLS", r"libcurl|libnghttp2|libssl|libcrypto|libz\.|libbrotli|libzstd|libidn|libpsl|libssh|libgnutls|libnettle|librtmp"),
    ("malloc / free", r"malloc\.c|:malloc |:free |_int_malloc|_int_free|swift_slowAlloc|swift_slowDealloc|tcache|malloc_consolidate|unlink_chunk|:calloc|:realloc|arena"),
    ("ARC / Swift allocation", r"swift_retain|swift_release|swift_allocObject|swift_deallocObject|RefCounts|swift_isUniquelyReferenced|swift_bridgeObject|swift_unknownObject|swift_arrayInitWithCopy|swift_arrayDestroy|swift_beginAccess|swift_endAccess|_swift_release_dealloc|swift_initStackObject|swift_deallocClassInstance|swift_weak"),
    ("Swift concurrency / dispatch (thread hops)", r"libswift_Concurrency|libdispatch|libswiftDispatch|swift_task|swift_job|swift_continuation"),
    ("locks / pthread / futex", r"pthread_|futex|lll_lock|__lll_|NSCondition|NSLock"),
    ("syscall wrappers (libc)", r"sysdeps/unix|syscall|epoll|__libc_(read|write|recv|send)|clock_gettime|getrandom|__GI___|:(read|write|recv|send|fsync|fdatasync|pwrite64|pread64|writev|poll|ppoll)( |$)"),
    ("memcpy / memset / strings (libc)", r"memcpy|memmove|memset|memcmp|strlen|strcmp|strchr|__memchr|strncmp|__str|wmem|memrchr"),
    ("Swift metadata / generics / conformances", r"swift_conformsToProtocol|Metadata|swift_getGeneric|swift_getWitnessTable|swift_dynamicCast|swift_checkMetadataState|swift_getAssociated|swift_getTypeByMangled|ConcurrentReadableHashMap|swift::|__swift_instantiate"),
    ("Foundation", r"libFoundation"),
    ("provisiond: HTTP parsing", r"HTTPParser|HTTPHeaders|HTTPRequest|10HTTPServer\d*HTTPParser"),
    ("provisiond: JSON", r"JSON"),
    ("provisiond: HTTP server / connection / response", r"HTTPServer"),
    ("provisiond: validation (RequestValidation)", r"TenantRequest|Validation|Domain|canonical|Canonical"),
    ("provisiond: SQLite wrapper / store", r"SQLite|TopicStore|StoreWriter|WriteJob|ReaderPool|Schema"),
    ("provisiond: dispatcher / webhooks", r"Dispatcher|CurlMulti|WebhookAttempt|WebhookSigner|Breaker|Retry"),
    ("provisiond: other", r"/provisiond\]|provisiond\]"),
    ("Swift stdlib (String, Array, Dictionary, hashing)", r"libswiftCore|libswift_StringProcessing|libswiftSynchronization|libswiftGlibc"),
    ("dynamic linker", r"ld-linux|dl-"),
    ("libc other", r"libc\.so|\./"),
    ("other", r"."),
]


def category(raw, shown):
    for name, pattern in CATEGORIES:
        if re.search(pattern, raw) or re.search(pattern, shown):
            return name
    return "other"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("workload")
    p.add_argument("baseline")
    p.add_argument("n", type=int)
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--inclusive", action="store_true")
    args = p.parse_args()

    w, b = annotate(args.workload, False), annotate(args.baseline, False)
    diff = {k: ((w.get(k, (0, 0))[0] - b.get(k, (0, 0))[0]) / args.n,
                (w.get(k, (0, 0))[1] - b.get(k, (0, 0))[1]) / args.n) for k in set(w) | set(b)}
    table = demangle(diff)
    total = sum(v[0] for v in diff.values())
    syscalls = sum(v[1] for v in diff.values())
    print(f"per request: {total:,.0f} instructions, {syscalls:.1f} syscalls (n={args.n})\n")

    groups = {}
    for k, (ir, sc) in diff.items():
        g = category(k, pretty(k, table))
        a, s = groups.get(g, (0, 0))
        groups[g] = (a + ir, s + sc)
    print(f"{'instructions':>12} {'share':>6} {'sysc':>5}  kind (exclusive costs)")
    for g, (ir, sc) in sorted(groups.items(), key=lambda kv: -kv[1][0]):
        if abs(ir) >= total * 0.001:
            print(f"{ir:>12,.0f} {100 * ir / total:5.1f}% {sc:5.1f}  {g}")

    print(f"\n{'instructions':>12} {'share':>6} {'sysc':>5}  top functions, exclusive")
    for k, (ir, sc) in sorted(diff.items(), key=lambda kv: -kv[1][0])[:args.top]:
        print(f"{ir:>12,.0f} {100 * ir / total:5.1f}% {sc:5.1f}  {pretty(k, table)[:170]}")

    if args.inclusive:
        wi, bi = annotate(args.workload, True), annotate(args.baseline, True)
        dinc = {k: ((wi.get(k, (0, 0))[0] - bi.get(k, (0, 0))[0]) / args.n,
                    (wi.get(k, (0, 0))[1] - bi.get(k, (0, 0))[1]) / args.n) for k in set(wi) | set(bi)}
        table.update(demangle(dinc))
        print(f"\n{'instructions':>12} {'share':>6} {'sysc':>5}  top functions, inclusive (overlapping)")
        for k, (ir, sc) in sorted(dinc.items(), key=lambda kv: -kv[1][0])[:args.top * 2]:
            print(f"{ir:>12,.0f} {100 * ir / total:5.1f}% {sc:5.1f}  {pretty(k, table)[:170]}")


if __name__ == "__main__":
    main()
