"""`make bench-proxy`: the SMS webhook through `twsig proxy` against nginx `proxy_pass` alone.

Both forward to the same fast upstream, an nginx server block that answers `return 200`; wrk (Debian's
package) POSTs the signed 20-parameter inbound SMS (bench/sms-webhook.form) to each in turn:

- throughput: `wrk -c CONNECTIONS` for SECONDS, ROUNDS rounds, the two proxies taking turns round by round
  so that machine noise hits both alike; the median requests/s of each is reported, and their ratio
  (issue 28's goal: twsig proxy >= 0.8x nginx);
- added latency: one connection (`wrk -c 1`), p99 through each proxy minus p99 straight to the upstream
  (the goal: <= 1 ms added by twsig proxy).

Everything runs on loopback on this machine (wrk, nginx, twsig proxy share its cores). twsig proxy writes
its one log line per request to /dev/null; nginx has access_log off. Results go to bench/proxy/results.md.

    python3 bench/proxy/run.py --twsig target/release/twsig [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
FORM = (ROOT / "bench" / "sms-webhook.form").read_bytes().strip()
TOKEN = "bench proxy auth token"
BASE_URL = "https://example.com"

NGINX_CONF = """
daemon off;
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    upstream app {{
        server 127.0.0.1:{upstream_port};
        keepalive 64;
    }}
    # The fast upstream both proxies forward to.
    server {{
        listen 127.0.0.1:{upstream_port};
        location / {{ return 200 "ok\\n"; }}
    }}
    # nginx alone: proxy_pass with upstream keep-alive, the usual production set-up.
    server {{
        listen 127.0.0.1:{nginx_port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
    }}
}}
"""

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["X-Twilio-Signature"] = "{signature}"
"""


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (all held open while picked, so none is handed out twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on 127.0.0.1:{port}")


def post(port: int, signature: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/sms",
        data=FORM,
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def to_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


def wrk(port: int, script: Path, connections: int, seconds: int) -> tuple[float, float, float]:
    """Requests/s, p50 and p99 latency (ms) of one wrk run."""
    threads = 1 if connections == 1 else 2
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/sms",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    if "Non-2xx or 3xx responses" in out:
        sys.exit(f"wrk saw refusals on port {port}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = to_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = to_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    return rps, p50, p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--twsig", default=str(ROOT / "target" / "release" / "twsig"))
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--out", default=str(ROOT / "bench" / "proxy" / "results.md"))
    args = parser.parse_args()

    signed = subprocess.run(
        [args.twsig, "sign", "--url", f"{BASE_URL}/sms"],
        input=FORM,
        capture_output=True,
        check=True,
        env={**os.environ, "TWILIO_AUTH_TOKEN": TOKEN},
    )
    signature = signed.stdout.decode().strip().splitlines()[-1]

    with tempfile.TemporaryDirectory(prefix="twsig-bench-proxy-") as tmp:
        directory = Path(tmp)
        upstream_port, nginx_port, twsig_port = free_ports(3)
        workers = os.cpu_count() or 1
        (directory / "nginx.conf").write_text(
            NGINX_CONF.format(
                dir=directory,
                workers=workers,
                upstream_port=upstream_port,
                nginx_port=nginx_port,
            )
        )
        script = directory / "post.lua"
        script.write_text(WRK_SCRIPT.format(body=FORM.decode(), signature=signature))
        nginx = subprocess.Popen(
            ["nginx", "-p", str(directory), "-c", str(directory / "nginx.conf"), "-e", str(directory / "e")]
        )
        proxy = subprocess.Popen(
            [
                args.twsig,
                "proxy",
                "--listen",
                f"127.0.0.1:{twsig_port}",
                "--upstream",
                f"http://127.0.0.1:{upstream_port}",
                "--base-url",
                BASE_URL,
            ],
            env={**os.environ, "TWILIO_AUTH_TOKEN": TOKEN},
            stderr=subprocess.DEVNULL,
        )
        try:
            for port in (upstream_port, nginx_port, twsig_port):
                wait_for_port(port)
            # The request is the real thing: twsig proxy verifies it (200), and refuses a forgery (403).
            if post(twsig_port, signature) != 200 or post(twsig_port, "A" * 27 + "=") != 403:
                sys.exit("twsig proxy does not answer 200 to the signed webhook and 403 to a forged one")
            if post(nginx_port, signature) != 200:
                sys.exit("nginx proxy_pass does not answer 200")
            # Warm-up: connection pools, caches.
            for port in (nginx_port, twsig_port):
                wrk(port, script, args.connections, 1)
            rps: dict[str, list[float]] = {"nginx": [], "twsig": []}
            for _ in range(args.rounds):
                rps["nginx"].append(wrk(nginx_port, script, args.connections, args.seconds)[0])
                rps["twsig"].append(wrk(twsig_port, script, args.connections, args.seconds)[0])
            p50: dict[str, list[float]] = {"direct": [], "nginx": [], "twsig": []}
            p99: dict[str, list[float]] = {"direct": [], "nginx": [], "twsig": []}
            for _ in range(args.rounds):
                for name, port in (("direct", upstream_port), ("nginx", nginx_port), ("twsig", twsig_port)):
                    _, fifty, ninety_nine = wrk(port, script, 1, max(2, args.seconds // 2))
                    p50[name].append(fifty)
                    p99[name].append(ninety_nine)
        finally:
            proxy.send_signal(signal.SIGTERM)
            nginx.send_signal(signal.SIGQUIT)
            proxy.wait(timeout=30)
            nginx.wait(timeout=30)

    median = {name: statistics.median(values) for name, values in rps.items()}
    latency = {name: statistics.median(values) for name, values in p99.items()}
    typical = {name: statistics.median(values) for name, values in p50.items()}
    ratio = median["twsig"] / median["nginx"]
    added_twsig = latency["twsig"] - latency["direct"]
    added_nginx = latency["nginx"] - latency["direct"]
    verdict_rps = "met" if ratio >= 0.8 else "MISSED"
    verdict_p99 = "met" if added_twsig <= 1.0 else "MISSED"
    rows = "\n".join(
        [
            f"| requests/s, {args.connections} connections | {median['nginx']:,.0f} "
            f"| {median['twsig']:,.0f} | {ratio:.2f}x | >= 0.8x: {verdict_rps} |",
            f"| p99 latency, 1 connection (upstream alone: {latency['direct']:.3f} ms) "
            f"| {latency['nginx']:.3f} ms | {latency['twsig']:.3f} ms | | |",
            f"| p99 added to the upstream's | {added_nginx:.3f} ms | {added_twsig:.3f} ms "
            f"| | <= 1 ms: {verdict_p99} |",
            f"| p50 latency, 1 connection (upstream alone: {typical['direct']:.3f} ms) "
            f"| {typical['nginx']:.3f} ms | {typical['twsig']:.3f} ms | | |",
        ]
    )
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    report = f"""# twsig proxy against nginx proxy_pass ({when})

The signed 20-parameter inbound SMS (bench/sms-webhook.form, {len(FORM)} bytes) POSTed by wrk to each
proxy, both forwarding to the same nginx `return 200` upstream on loopback; {platform.machine()},
{os.cpu_count()} CPUs shared by wrk, nginx ({workers} workers) and twsig proxy (load average at the end:
{load}; one-connection p99s on a shared 2-core machine are mostly scheduler noise, see p50).
`python3 bench/proxy/run.py` (`make bench-proxy`), {args.rounds} rounds of {args.seconds:g} s, medians.

| | nginx proxy_pass | twsig proxy | ratio | goal |
|---|---|---|---|---|
{rows}

Per round, requests/s: nginx {", ".join(f"{v:,.0f}" for v in rps["nginx"])}; twsig
{", ".join(f"{v:,.0f}" for v in rps["twsig"])}. p99 (ms), direct {p99["direct"]}, nginx {p99["nginx"]},
twsig {p99["twsig"]}.
"""
    Path(args.out).write_text(report)
    print(report)


if __name__ == "__main__":
    main()
