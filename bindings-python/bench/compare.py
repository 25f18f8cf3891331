"""Speed of the drop-in ``RequestValidator.validate`` and the native ``Validator.is_valid`` against
twilio-python's ``RequestValidator.validate`` on a 20-param inbound SMS webhook, in one process.

Rounds are interleaved (each round times every contender once) and the median per-call time of the
rounds is reported, with the ratio to twilio-python. Usage: ``python bench/compare.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from urllib.parse import urlencode

import twilio_signature as ts
from twilio.request_validator import RequestValidator as Official

TOKEN = "12345678901234567890123456789012"
URL = "https://example.com/twilio/sms"
PARAMS = {
    "ToCountry": "US",
    "ToState": "CA",
    "SmsMessageSid": "SM" + "a" * 32,
    "NumMedia": "0",
    "ToCity": "SAN FRANCISCO",
    "FromZip": "94105",
    "SmsSid": "SM" + "a" * 32,
    "FromState": "CA",
    "SmsStatus": "received",
    "FromCity": "SAN FRANCISCO",
    "Body": "Hello from the benchmark, ü!",
    "FromCountry": "US",
    "To": "+14155550100",
    "MessagingServiceSid": "MG" + "b" * 32,
    "ToZip": "94105",
    "NumSegments": "1",
    "MessageSid": "SM" + "a" * 32,
    "AccountSid": "AC" + "c" * 32,
    "From": "+14155550199",
    "ApiVersion": "2010-04-01",
}
assert len(PARAMS) == 20
BODY = urlencode(PARAMS).encode()


def per_call_ns(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        fn()
    return (time.perf_counter_ns() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()

    official, drop_in, native = Official(TOKEN), ts.RequestValidator(TOKEN), ts.Validator(TOKEN)
    signature = official.compute_signature(URL, PARAMS)
    contenders: dict[str, Callable[[], object]] = {
        "twilio-python RequestValidator.validate": lambda: official.validate(URL, PARAMS, signature),
        "twilio_signature RequestValidator.validate": lambda: drop_in.validate(URL, PARAMS, signature),
        "twilio_signature Validator.is_valid (raw body)": lambda: native.is_valid(URL, BODY, signature),
    }
    for name, fn in contenders.items():
        assert fn() is True, name
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, fn in contenders.items():
            samples[name].append(per_call_ns(fn, args.calls))
    baseline = statistics.median(samples["twilio-python RequestValidator.validate"])
    print(f"20-param SMS webhook, median of {args.rounds} interleaved rounds x {args.calls} calls")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"  {name:48} {median / 1000:8.2f} us/call   {baseline / median:6.2f}x twilio-python")


if __name__ == "__main__":
    main()
