"""Runs every benchmark of twilio-signature in one go and writes BENCHMARKS.md and bench/benchmarks.png.

Run through `make bench` (which builds everything first) with the project venv's python:

    .venv/bin/python bench/run.py [--rounds N] [--skip-core]

1. Core (Rust): the criterion benches in bench/benches/core.rs; verify vs the pre-keyed HMAC limit, the
   adversarial inputs, per-param scaling, and heap allocations per verify (a counting allocator).
2. Cross-language, one webhook (a real 20-parameter inbound SMS, signed by twilio-python): each contender
   times short batches *inside its own process*; contenders take turns batch by batch over interleaved
   rounds, so machine noise hits them all alike; we report the median ns/op over rounds.
   - in this process: twilio-python's RequestValidator.validate, our drop-in RequestValidator.validate
     and our native Validator.is_valid;
   - worker processes speaking a line protocol ("N" in, elapsed ns out): twilio-node's validateRequest
     and our Node package's Validator.verify and drop-in validateRequest (bench/node/bench.js),
     our C ABI (tws_verify, tws_validator_verify), the OpenSSL hashing limit (a pre-keyed libcrypto
     HMAC-SHA1 of the signed string, which tws_verify is compared with), twilio-go's
     RequestValidator.Validate and our Go binding (twiliosig).
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import tracemalloc
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "bench"
FIXTURE_DIR = OUT / "fixture"
FIXTURE_JSON = OUT / "webhook.json"
CRITERION = ROOT / "target" / "criterion"

TOKEN = "12345678901234567890123456789012"
URL = "https://example.com/twilio/sms?tenant=acme"
# A real inbound SMS webhook body, parameters in the order Twilio sends them (shared with bench/src/lib.rs).
SMS_BODY = (ROOT / "bench" / "sms-webhook.form").read_text().strip()
SMS_PARAMS = urllib.parse.parse_qsl(SMS_BODY, keep_blank_values=True, strict_parsing=True)

TARGET_BATCH_SECONDS = 0.03


# ---------------------------------------------------------------------------------------------------
# The shared webhook


def proxy_section() -> str:
    """The `twsig proxy` table from bench/proxy/results.md (written by `make bench-proxy`, which `make bench`
    runs first), or nothing if that file is missing."""
    results = ROOT / "bench" / "proxy" / "results.md"
    if not results.exists():
        return ""
    lines = results.read_text().splitlines()
    title = lines[0].removeprefix("# ") if lines else ""
    table = [line for line in lines if line.startswith("|")]
    return (
        f"\n## `twsig proxy` against nginx `proxy_pass` ({title.split('(')[-1].rstrip(')')})\n\n"
        "The signed SMS webhook through `twsig proxy` and through nginx `proxy_pass`, both in front of the\n"
        "same nginx `return 200`, load from wrk, on this machine's two cores (details and every round:\n"
        "[bench/proxy/results.md](bench/proxy/results.md)).\n\n" + "\n".join(table) + "\n"
    )


def write_fixture() -> dict[str, object]:
    """Signs the webhook with twilio-python (not with our code) and writes it for every contender."""
    from twilio.request_validator import RequestValidator

    body = SMS_BODY
    signature = RequestValidator(TOKEN).compute_signature(URL, dict(SMS_PARAMS))
    fixture: dict[str, object] = {
        "token": TOKEN,
        "url": URL,
        "body": body,
        "signature": signature,
        "params": [list(p) for p in SMS_PARAMS],
    }
    FIXTURE_DIR.mkdir(parents=True, exist_ok=True)
    for name in ("token", "url", "body", "signature"):
        (FIXTURE_DIR / name).write_bytes(str(fixture[name]).encode())
    # The signed string, for the OpenSSL hashing limit (bench_c checks its MAC against the signature).
    signed = URL + "".join(name + value for name, value in sorted(set(SMS_PARAMS)))
    (FIXTURE_DIR / "canonical").write_bytes(signed.encode())
    FIXTURE_JSON.write_text(json.dumps(fixture))
    return fixture


# ---------------------------------------------------------------------------------------------------
# Contenders


@dataclass
class Contender:
    name: str
    language: str
    what: str
    run_batch: Callable[[int], float]  # ops -> elapsed seconds
    close: Callable[[], None] = lambda: None
    batch: int = 1
    samples: list[float] = field(default_factory=list)  # ns/op, one per round

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def in_process(name: str, what: str, call: Callable[[], bool]) -> Contender:
    if not call():
        raise SystemExit(f"run.py: {name} rejects the fixture")

    def run_batch(n: int) -> float:
        start = time.perf_counter_ns()
        for _ in range(n):
            call()
        return (time.perf_counter_ns() - start) / 1e9

    return Contender(name, "Python", what, run_batch)


def worker(name: str, language: str, what: str, argv: list[str]) -> Contender | None:
    """Starts a worker process; None (with a note) when it cannot run here."""
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT, bufsize=1
        )
    except OSError as e:
        print(f"run.py: skipping {name}: {e}", file=sys.stderr)
        return None
    assert proc.stdout is not None and proc.stdin is not None
    stdin, stdout = proc.stdin, proc.stdout
    first = stdout.readline().strip()
    if first == "unavailable":
        proc.wait()
        print(f"run.py: skipping {name}: unavailable on this machine", file=sys.stderr)
        return None
    if first != "ready":
        proc.wait()
        raise SystemExit(f"run.py: {name} failed its fixture check (exit {proc.returncode})")

    def run_batch(n: int) -> float:
        stdin.write(f"{n}\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise SystemExit(f"run.py: {name} died mid-run")
        return int(line) / 1e9

    def close() -> None:
        stdin.close()
        proc.wait(timeout=10)

    return Contender(name, language, what, run_batch, close)


def python_calls(fixture: dict[str, object]) -> dict[str, tuple[str, Callable[[], bool]]]:
    """The in-process contenders: name -> (what is called, a call on the shared webhook)."""
    import twilio_signature
    from twilio.request_validator import RequestValidator as TwilioValidator

    url, sig = str(fixture["url"]), str(fixture["signature"])
    params = dict(SMS_PARAMS)
    body = str(fixture["body"]).encode()
    theirs = TwilioValidator(TOKEN)
    drop_in = twilio_signature.RequestValidator(TOKEN)
    native = twilio_signature.Validator(TOKEN)
    return {
        "twilio-python": (
            "RequestValidator.validate (twilio 9.13.0)",
            lambda: theirs.validate(url, params, sig),
        ),
        "ours: drop-in": (
            "twilio_signature.RequestValidator.validate (same dict)",
            lambda: drop_in.validate(url, params, sig),
        ),
        "ours: native": (
            "twilio_signature.Validator.is_valid (raw body)",
            lambda: native.is_valid(url, body, sig),
        ),
    }


def contenders(fixture: dict[str, object], only: set[str] | None = None) -> list[Contender]:
    """Every contender, or only those of the languages in `only` (--only)."""
    found = []
    if only is None or "Python" in only:
        found = [in_process(name, what, call) for name, (what, call) in python_calls(fixture).items()]
    workers = [
        (
            "twilio-node",
            "Node",
            "validateRequest (twilio 6.2.0)",
            ["node", "bench/node/bench.js", str(FIXTURE_JSON), "twilio-node"],
        ),
        (
            "ours: Node Validator",
            "Node",
            "twilio-signature Validator.verify, raw body (a Buffer)",
            ["node", "bench/node/bench.js", str(FIXTURE_JSON), "ours-validator"],
        ),
        (
            "ours: Node drop-in",
            "Node",
            "twilio-signature validateRequest (same params object)",
            ["node", "bench/node/bench.js", str(FIXTURE_JSON), "ours-dropin"],
        ),
        (
            "ours: C tws_verify",
            "C",
            "one-shot C ABI, raw body",
            [str(OUT / "bench_c"), "oneshot", str(FIXTURE_DIR)],
        ),
        (
            "ours: C validator",
            "C",
            "tws_validator_verify, raw body",
            [str(OUT / "bench_c"), "validator", str(FIXTURE_DIR)],
        ),
        (
            "OpenSSL HMAC limit",
            "C",
            "pre-keyed HMAC-SHA1 (libcrypto) of the already-built signed string",
            [str(OUT / "bench_c"), "openssl", str(FIXTURE_DIR)],
        ),
        (
            "twilio-go",
            "Go",
            "client.RequestValidator.Validate (twilio-go)",
            [str(OUT / "gobench"), "twilio-go", str(FIXTURE_JSON)],
        ),
        (
            "ours: Go Validator",
            "Go",
            "twiliosig.Validator.Verify, raw body",
            [str(OUT / "gobench"), "twiliosig", str(FIXTURE_JSON)],
        ),
        (
            "ours: Go Verify",
            "Go",
            "twiliosig.Verify (one-shot), raw body",
            [str(OUT / "gobench"), "twiliosig-oneshot", str(FIXTURE_JSON)],
        ),
    ]
    for name, language, what, argv in workers:
        if only is not None and language not in only:
            continue
        c = worker(name, language, what, argv)
        if c is not None:
            found.append(c)
    return found


def calibrate(c: Contender) -> None:
    """Grows the batch until it takes about TARGET_BATCH_SECONDS (also warms the contender up)."""
    n = 1
    while True:
        elapsed = c.run_batch(n)
        if elapsed >= TARGET_BATCH_SECONDS / 4 or n >= 1 << 24:
            break
        n *= 4
    c.batch = max(1, int(n * TARGET_BATCH_SECONDS / max(elapsed, 1e-9)))


def interleave(all_: list[Contender], rounds: int) -> None:
    for c in all_:
        calibrate(c)
    for r in range(rounds):
        # Rotate who goes first so no contender always follows the same neighbour.
        for i in range(len(all_)):
            c = all_[(i + r) % len(all_)]
            c.samples.append(c.run_batch(c.batch) * 1e9 / c.batch)


# ---------------------------------------------------------------------------------------------------
# Allocations outside the core


def python_allocations(fixture: dict[str, object]) -> dict[str, str]:
    """tracemalloc: peak traced bytes during one call, and blocks still held after 1000 calls."""
    calls = {name: call for name, (_, call) in python_calls(fixture).items()}
    out = {}
    for name, call in calls.items():
        call()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        call()
        peak = tracemalloc.get_traced_memory()[1] - before
        snap0 = tracemalloc.take_snapshot()
        for _ in range(1000):
            call()
        snap1 = tracemalloc.take_snapshot()
        tracemalloc.stop()
        kept = sum(s.count_diff for s in snap1.compare_to(snap0, "lineno") if s.count_diff > 0)
        out[name] = f"peak {peak} B/call, {kept} blocks kept after 1000 calls"
    return out


MALLOC_COUNT = OUT / "libmalloc_count.so"


def _alloc_lines(argv: list[str], env: dict[str, str] | None = None, suffix: str = "allocs/op") -> dict:
    if not Path(argv[0]).exists() or (env and not MALLOC_COUNT.exists()):
        return {}
    res = subprocess.run(argv, capture_output=True, text=True, check=True, env=env, cwd=ROOT)
    return {
        m.group(1): f"{m.group(2)} {suffix}" for m in re.finditer(r"^ALLOCS (.+) (\S+)$", res.stdout, re.M)
    }


def counted_env() -> dict[str, str]:
    """Every malloc counted (bench/c/malloc_count.c); Python objects go through malloc too."""
    return {**os.environ, "LD_PRELOAD": str(MALLOC_COUNT), "PYTHONMALLOC": "malloc"}


def native_allocations() -> dict[str, str]:
    """malloc calls per verify: the C ABI, and each Python call (Python objects and Rust side alike)."""
    found = _alloc_lines([str(OUT / "bench_c"), "allocs", str(FIXTURE_DIR)], counted_env(), "mallocs/call")
    found = {f"C {k}": v for k, v in found.items()}
    argv = [sys.executable, str(Path(__file__).resolve()), "--count-python-allocs"]
    found.update(_alloc_lines(argv, counted_env(), "mallocs/call (PYTHONMALLOC=malloc)"))
    return found


def count_python_allocs() -> None:
    """Runs under LD_PRELOAD=libmalloc_count.so: prints `ALLOCS <name> <mallocs per call>`."""
    import ctypes

    malloc_count = ctypes.CDLL(None).malloc_count
    malloc_count.restype = ctypes.c_size_t
    calls = {"python loop overhead": (lambda: True)}
    calls.update({name: call for name, (_, call) in python_calls(write_fixture()).items()})
    for name, call in calls.items():
        for _ in range(10):
            call()
        before = malloc_count()
        for _ in range(1000):
            call()
        print(f"ALLOCS {name} {(malloc_count() - before) / 1000:.2f}")


def go_allocations() -> dict[str, str]:
    return _alloc_lines([str(OUT / "gobench"), "allocs", str(FIXTURE_JSON)])


# ---------------------------------------------------------------------------------------------------
# Core (criterion)


def run_criterion() -> list[str]:
    cmd = [
        os.environ.get("CARGO", "cargo"),
        "bench",
        "-p",
        "twilio-signature-bench",
        "--bench",
        "core",
        "--",
        "--noplot",
    ]
    print("+", " ".join(cmd), flush=True)
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if res.returncode != 0:
        sys.stderr.write(res.stdout[-4000:] + res.stderr[-4000:])
        raise SystemExit("run.py: cargo bench failed")
    return [line for line in res.stdout.splitlines() if line.startswith(("ALLOCS ", "RACE "))]


def criterion_medians() -> dict[tuple[str, str], float]:
    """(group, function) -> median ns, from criterion's own files."""
    out = {}
    for path in glob.glob(str(CRITERION / "**" / "new" / "benchmark.json"), recursive=True):
        meta = json.loads(Path(path).read_text())
        est = json.loads((Path(path).parent / "estimates.json").read_text())
        function = meta["function_id"] or ""
        if meta.get("value_str"):
            function = f"{function}/{meta['value_str']}"
        out[(meta["group_id"], function)] = est["median"]["point_estimate"]
    return out


# ---------------------------------------------------------------------------------------------------
# Reporting


def fmt_ns(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.0f} ns"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def sh(cmd: str) -> str:
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def machine() -> str:
    cpu = re.search(r"Model name:\s*(.+)", sh("lscpu"))
    return (
        f"{cpu.group(1).strip() if cpu else platform.processor()}, `nproc` = {sh('nproc')}, "
        f"{platform.system()} {platform.release()}"
    )


def versions() -> str:
    import twilio

    node_twilio = json.loads((ROOT / "bench/node/node_modules/twilio/package.json").read_text())
    go_twilio = re.search(r"github.com/twilio/twilio-go (\S+)", (ROOT / "bench/go/go.mod").read_text())
    return ", ".join(
        [
            sh("rustc --version"),
            sh("go version").replace("go version ", ""),
            f"node {sh('node --version')}",
            f"Python {platform.python_version()}",
            f"twilio-python {twilio.__version__}",
            f"twilio-node {node_twilio['version']}",
            f"twilio-go {go_twilio.group(1) if go_twilio else '?'}",
            "criterion 0.8",
        ]
    )


def race_medians(lines: list[str]) -> dict[tuple[str, str], float]:
    """(group, contender) -> median ns, from the bench binary's interleaved `RACE` lines."""
    out = {}
    for line in lines:
        if line.startswith("RACE "):
            _, group, name, ns = line.split()
            out[(group, name)] = float(ns)
    return out


def core_section(
    med: dict[tuple[str, str], float], crit: dict[tuple[str, str], float], allocs: list[str]
) -> tuple[str, dict]:
    """`med`: interleaved medians (all ratios come from these); `crit`: criterion's, as a cross-check."""

    def crit_ns(key: tuple[str, str]) -> str:
        return fmt_ns(crit[key]) if key in crit else "-"

    def crit_per_param(n: int) -> str:
        ns = crit.get(("scaling", f"params/{n}"))
        return f"{ns / n:.0f} ns" if ns else "-"

    everyday = sorted({g for g, _ in med if g.startswith("verify/")}, key=_workload_order)
    rows, ratios = [], {}
    for g in everyday:
        lim = med.get((g, "limit"))
        one, val, scr = (med.get((g, f)) for f in ("one-shot", "validator", "validator-scratch"))
        if None in (lim, one, val, scr):
            continue
        ratios[g.split("/", 1)[1]] = (val / lim, one / lim)
        rows.append(
            [
                g.split("/", 1)[1],
                fmt_ns(one),
                fmt_ns(val),
                fmt_ns(scr),
                fmt_ns(lim),
                f"**{val / lim:.2f}x**",
                f"{scr / lim:.2f}x",
                f"**{one / lim:.2f}x**",
                crit_ns((g, "validator")),
                crit_ns((g, "limit")),
            ]
        )
    md = table(
        [
            "workload",
            "one-shot",
            "validator",
            "validator + own scratch",
            "HMAC limit",
            "validator / limit",
            "scratch / limit",
            "one-shot / limit",
            "criterion: validator",
            "criterion: limit",
        ],
        rows,
    )
    adv_rows = []
    for g in sorted({g for g, _ in med if g.startswith("adversarial/")}):
        t, lim = med.get((g, "validator-scratch")), med.get((g, "limit"))
        if t is None or lim is None:
            continue
        adv_rows.append(
            [g.split("/", 1)[1], fmt_ns(t), fmt_ns(lim), f"{t / lim:.2f}x", crit_ns((g, "validator-scratch"))]
        )
    md += "\n\nAdversarial inputs (validator with a scratch buffer big enough to accept them):\n\n"
    md += table(["workload", "verify", "HMAC limit", "verify / limit", "criterion: verify"], adv_rows)
    scale = sorted(
        (
            (int(f.split("/")[1]), ns)
            for (g, f), ns in med.items()
            if g == "scaling" and f.startswith("params/")
        )
    )
    md += (
        "\n\nScaling with the number of params (per-param time flat, or growing like log n: O(n log n)):\n\n"
    )
    md += table(
        ["params", "verify", "per param", "criterion: per param"],
        [[f"{n:,}", fmt_ns(ns), f"{ns / n:.0f} ns", crit_per_param(n)] for n, ns in scale],
    )
    if len(scale) >= 2:
        (n0, t0), (n1, t1) = scale[0], scale[-1]
        md += (
            f"\n\nPer-param time grew {(t1 / n1) / (t0 / n0):.1f}x from {n0:,} to {n1:,} params, "
            f"while log2 n grew {math.log2(n1) / math.log2(n0):.1f}x."
        )
    md += "\n\nHeap allocations per verify (counting global allocator in the bench binary):\n\n"
    md += "```\n" + "\n".join(allocs) + "\n```\n"
    return md, {"ratios": ratios, "scale": scale}


def _workload_order(g: str) -> tuple[int, str]:
    order = ["sms-20", "json", "params-0", "params-5", "params-50", "params-200", "body-64KiB"]
    name = g.split("/", 1)[1]
    return (order.index(name) if name in order else 99, name)


def cross_section(all_: list[Contender]) -> tuple[str, list[tuple[str, str, float]]]:
    by = {c.name: c for c in all_}
    rows = []
    for c in all_:
        spread = f"{min(c.samples) / 1e3:.2f} to {max(c.samples) / 1e3:.2f} µs"
        rows.append([c.name, c.language, c.what, fmt_ns(c.median), spread, f"{c.batch:,}"])
    md = table(["contender", "lang", "call", "median / op", "range over rounds", "ops / batch"], rows)
    pairs = [
        ("twilio-python", "ours: drop-in", 30),
        ("twilio-python", "ours: native", 60),
        ("twilio-node", "ours: Node Validator", 4),
        ("twilio-node", "ours: Node drop-in", 2),
        ("twilio-node", "ours: C tws_verify", 5),
        ("twilio-node", "ours: C validator", 5),
        ("twilio-go", "ours: C tws_verify", 5),
        ("twilio-go", "ours: C validator", 5),
        ("twilio-go", "ours: Go Validator", None),
        ("twilio-go", "ours: Go Verify", None),
    ]
    ratio_rows, ratios = [], []
    for slow, fast, target in pairs:
        if slow in by and fast in by:
            r = by[slow].median / by[fast].median
            ratios.append((slow, fast, r))
            verdict = "" if target is None else (f"≥ {target}x: " + ("met" if r >= target else "**missed**"))
            ratio_rows.append([f"{fast} vs {slow}", f"**{r:.2f}x** faster", verdict])
    md += "\n\nRatios (median over median, same run):\n\n" + table(["pair", "ratio", "target"], ratio_rows)
    limit = by.get("OpenSSL HMAC limit")
    if limit is not None:
        limit_rows = []
        for name, target in (("ours: C tws_verify", 2.0), ("ours: C validator", None)):
            if name in by:
                r = by[name].median / limit.median
                met = "met" if target is not None and r <= target else "**missed**"
                verdict = "" if target is None else f"≤ {target}x: {met}"
                limit_rows.append([f"{name} / OpenSSL HMAC limit", f"**{r:.2f}x**", verdict])
        md += (
            "\n\nThe C ABI against the least work a libcrypto verifier must do (HMAC-SHA1 keyed once,"
            " copied per call, over the already-built signed string; same run):\n\n"
            + table(["pair", "ratio", "target"], limit_rows)
        )
    return md, ratios


def chart(all_: list[Contender], core: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 5.5))
    ax = axes[0]
    names = [c.name for c in all_]
    values = [c.median / 1e3 for c in all_]
    colors = ["#999999" if not c.name.startswith("ours") else "#d62728" for c in all_]
    ax.barh(names[::-1], values[::-1], color=colors[::-1])
    ax.set_xscale("log")
    ax.set_xlabel("µs per verification (median, log scale)")
    ax.set_title("Same 20-param SMS webhook, one run\n(red: this project, grey: official SDKs)")
    for y, v in enumerate(values[::-1]):
        ax.text(v, y, f" {v:.2f}", va="center", fontsize=8)

    ax = axes[1]
    ratios = core["ratios"]
    labels = list(ratios)
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], [ratios[k][0] for k in labels], 0.4, label="reusable validator")
    ax.bar([x + 0.2 for x in xs], [ratios[k][1] for k in labels], 0.4, label="one-shot")
    ax.axhline(1.3, color="green", ls="--", lw=1, label="1.3x target")
    ax.axhline(2.0, color="orange", ls="--", lw=1, label="2x target")
    ax.set_xticks(list(xs), labels, rotation=30, ha="right")
    ax.set_ylabel("verify time / pre-keyed HMAC time")
    ax.set_title("Core verify vs the hashing limit")
    ax.legend(fontsize=8)

    ax = axes[2]
    scale = core["scale"]
    if scale:
        ax.plot([n for n, _ in scale], [ns / n for n, ns in scale], marker="o")
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("params per request")
    ax.set_ylabel("ns per param")
    ax.set_title("Per-param cost vs params\n(flat or growing like log n = O(n log n))")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    ap.add_argument("--skip-core", action="store_true", help="reuse criterion's last results")
    ap.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    ap.add_argument(
        "--only",
        help="comma-separated languages of the cross-language contenders to run (Python, Node, C, Go); "
        "default all. With --skip-core, e.g. `--only Node` times the Node rows alone",
    )
    ap.add_argument("--count-python-allocs", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.count_python_allocs:
        count_python_allocs()
        return

    OUT.mkdir(parents=True, exist_ok=True)
    fixture = write_fixture()
    lines_file = OUT / "core-lines.txt"
    if args.skip_core:
        lines = lines_file.read_text().splitlines() if lines_file.exists() else []
    else:
        lines = run_criterion()
        lines_file.write_text("\n".join(lines) + "\n")
    allocs = [line for line in lines if line.startswith("ALLOCS ")]
    core_md, core = core_section(race_medians(lines), criterion_medians(), allocs)

    print("cross-language: calibrating and running interleaved rounds", flush=True)
    all_ = contenders(fixture, set(args.only.split(",")) if args.only else None)
    try:
        interleave(all_, args.rounds)
    finally:
        for c in all_:
            c.close()
    cross_md, _ = cross_section(all_)
    python_peaks = {f"{k} (tracemalloc)": v for k, v in python_allocations(fixture).items()}
    alloc_lines = {**native_allocations(), **python_peaks, **go_allocations()}
    alloc_md = "\n".join(f"- {k}: {v}" for k, v in alloc_lines.items())

    proxy_md = proxy_section()
    analysis_file = ROOT / "bench" / "analysis.md"
    analysis = "\n" + analysis_file.read_text() if analysis_file.exists() else ""
    png = ROOT / "bench" / "benchmarks.png"
    chart(all_, core, png)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    doc = f"""# Benchmarks

Generated by `make bench` (which builds everything in release, then runs
`.venv/bin/python bench/run.py {" ".join(sys.argv[1:])}`) on {when}.
Numbers from a shared, noisy 2-core machine: read the **ratios**, which come from one run where
contenders took turns; absolute times are context.

- Machine: {machine()}
- Versions: {versions()}

![benchmark chart](bench/benchmarks.png)

## Cross-language: the same webhook, same machine, one run

A real 20-parameter inbound SMS webhook, signed by twilio-python. Each contender times batches of about
{TARGET_BATCH_SECONDS * 1000:.0f} ms inside its own process; contenders take turns, batch by batch, over
{args.rounds} interleaved rounds; the table shows the median ns/op. The official SDKs are given the
parsed form (a dict / object / map), as their APIs require; our native calls take the raw body and do
the form parsing themselves.

{cross_md}

Allocations outside the core for this webhook: `mallocs/call` counts every `malloc`/`calloc`/`realloc`
/aligned call per verification (an `LD_PRELOAD` counter, `bench/c/malloc_count.c`; Python run with
`PYTHONMALLOC=malloc` so its objects count too, the bare loop's own cost listed first); tracemalloc gives
the peak Python-heap bytes of one call and the blocks still held after 1000 calls; Go figures are
`testing.AllocsPerRun`.

{alloc_md}
{proxy_md}
## Core (Rust, criterion): verify vs the hashing limit

The *hashing limit* is a pre-keyed HMAC-SHA1 (same `hmac`/`sha1` crates and versions as the core) cloned
and run over the already-built canonical string (plus the SHA-256 of the body for the JSON webhook): the
least work any verifier must do. `validator` is `Validator::verify` (stack scratch of 64 spans, or 512),
`validator + own scratch` is `Validator::verify_with_scratch` with a reused buffer, `one-shot` is
`twilio_signature::verify(secret, ..)` (keys HMAC per call). Times and ratios are medians of interleaved
rounds run by the bench binary (`bench/src/race.rs`: the variants of a workload take turns, batch by
batch), so both sides of a ratio see the same machine; criterion's own medians (measured one benchmark
after another, full reports in `target/criterion/`) are shown beside them as a cross-check.

{core_md}
{analysis}"""
    Path(args.output).write_text(doc)
    print(doc)


if __name__ == "__main__":
    main()
