"""Summarises tests/bench/vector_codes.sh's results.jsonl: per encoding and size, and the
10^6 projection as fixed process overhead + a per-vector slope measured between the two
sizes (not a linear scale of the total)."""
import json
import statistics
import sys
from collections import defaultdict

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
builds = {(r["vectors"], r["n"]): r for r in rows if r.get("step") == "build"}
serves = {(r["vectors"], r["n"]): r for r in rows if r.get("step") == "serve" and "build" not in r}
# vector_codes.sh --compare: the same indexes served by another checkout's library.
compared = {(r["vectors"], r["n"]): r for r in rows if r.get("step") == "serve" and r.get("build") == "compare"}
times = defaultdict(list)
for r in rows:
    if "time" in r:
        times[r["time"]].append(r)
MiB = 1048576
print("\n| vectors | N | link wall s | link CPU s | file MiB | build peak RSS MiB | load s (CPU) | RSS after load MiB | RSS after 500 queries MiB |")
print("|---|---|---|---|---|---|---|---|---|")
for (codes, n), b in sorted(builds.items(), key=lambda kv: (kv[0][1], ["f32", "f16", "int8"].index(kv[0][0]))):
    s = serves[(codes, n)]
    print(f"| {codes} | {n:,} | {b['link']['wall_s']:.0f} | {b['link']['cpu_s']:.0f} | {b['file_bytes'] / MiB:,.0f} | "
          f"{b['peak_rss_mib']:,.0f} | {s['load']['wall_s']:.2f} ({s['load']['cpu_s']:.2f}) | {s['rss_after_load_mib']:,.0f} | "
          f"{s['rss_after_queries_mib']:,.0f} |")
print("\n| vectors | N | ef | recall@10 | p50 ms | p99 ms | CPU p50 ms | CPU p99 ms |")
print("|---|---|---|---|---|---|---|---|")
for (codes, n), s in sorted(serves.items(), key=lambda kv: (kv[0][1], ["f32", "f16", "int8"].index(kv[0][0]))):
    for ef, e in s["ef"].items():
        print(f"| {codes} | {n:,} | {ef} | {e['recall_at_10']:.3f} | {e['p50_ms']:.2f} | {e['p99_ms']:.2f} | "
              f"{e['cpu_p50_ms']:.2f} | {e['cpu_p99_ms']:.2f} |")
if compared:
    print("\n| vectors | N | RSS after load MiB, this / compare | RSS after 500 queries MiB, this / compare | load s, this / compare | recall@10 ef 64, this / compare | p50 ms ef 64, this / compare |")
    print("|---|---|---|---|---|---|---|")
    for (codes, n), c in sorted(compared.items()):
        s = serves[(codes, n)]
        print(f"| {codes} | {n:,} | {s['rss_after_load_mib']:,.0f} / {c['rss_after_load_mib']:,.0f} | "
              f"{s['rss_after_queries_mib']:,.0f} / {c['rss_after_queries_mib']:,.0f} | "
              f"{s['load']['wall_s']:.2f} / {c['load']['wall_s']:.2f} | "
              f"{s['ef']['64']['recall_at_10']:.3f} / {c['ef']['64']['recall_at_10']:.3f} | "
              f"{s['ef']['64']['p50_ms']:.2f} / {c['ef']['64']['p50_ms']:.2f} |")
sizes = sorted({n for (_, n) in serves})
if len(sizes) >= 2:
    n1, n2 = sizes[0], sizes[-1]
    print(f"\nProjection to 10^6 from N = {n1:,} and {n2:,}: value(N) = fixed + slope x N")
    print("| vectors | RSS slope bytes/vector | RSS fixed MiB | RSS at 10^6 GiB | file slope bytes/vector | file at 10^6 GiB |")
    print("|---|---|---|---|---|---|")
    for codes in ["f32", "f16", "int8"]:
        # A --reuse run serves indexes it did not build: no file sizes then.
        if any(k not in serves or k not in builds for k in [(codes, n1), (codes, n2)]):
            continue
        r1, r2 = serves[(codes, n1)]["rss_after_queries_mib"], serves[(codes, n2)]["rss_after_queries_mib"]
        slope = (r2 - r1) * MiB / (n2 - n1)
        fixed = r1 - slope * n1 / MiB
        f1, f2 = builds[(codes, n1)]["file_bytes"], builds[(codes, n2)]["file_bytes"]
        fslope = (f2 - f1) / (n2 - n1)
        print(f"| {codes} | {slope:,.0f} | {fixed:,.0f} | {(fixed * MiB + slope * 1e6) / 2**30:.2f} | {fslope:,.0f} | "
              f"{(f1 + fslope * (1e6 - n1)) / 2**30:.2f} |")
updates = [r for r in rows if r.get("step") == "update"]
if updates:
    print("\n| vectors | N | load s | add 10k wall s (CPU) | save s | remove 10k wall s (CPU) | tombstones | save s |")
    print("|---|---|---|---|---|---|---|---|")
    for u in updates:
        print(f"| {u['vectors']} | {u['n']:,} | {u['load']['wall_s']:.2f} | {u['add_10k']['wall_s']:.1f} ({u['add_10k']['cpu_s']:.1f}) | "
              f"{u['add_10k_save']['wall_s']:.1f} | {u['remove']['wall_s']:.2f} ({u['remove']['cpu_s']:.2f}) | {u['tombstones']} | "
              f"{u['remove_save']['wall_s']:.1f} |")
if times:
    print("\n| command (median, range) | runs | wall s | CPU s | peak RSS MiB |")
    print("|---|---|---|---|")
    for label, rs in times.items():
        if label.startswith("build"):
            continue
        walls = [r['wall_s'] for r in rs]
        print(f"| {label} | {len(rs)} | {statistics.median(walls):.2f} ({min(walls):.2f}-{max(walls):.2f}) | "
              f"{statistics.median(r['cpu_s'] + r['cpu_sys_s'] for r in rs):.2f} | "
              f"{statistics.median(r['peak_rss_kb'] for r in rs) / 1024:,.0f} |")
