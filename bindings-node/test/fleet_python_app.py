"""One Python instance of a mixed fleet (test/fleet.test.js): a Flask app behind the shared public URL,
verifying with twilio_signature and answering retries through a RedisStore on the test's redis-server.

    python fleet_python_app.py PORT REDIS_PORT RUNS_FILE

Prints "ready" once it listens. Each run of the handler appends "python" to RUNS_FILE.
"""

from __future__ import annotations

import logging
import sys
import threading

import redis
from flask import Flask, Response, request
from twilio_signature.flask import validate_twilio_request
from twilio_signature.idempotency import RedisStore
from werkzeug.serving import make_server

TOKEN = "fleet-token-0123456789abcdef0123"
BASE_URL = "https://hooks.example.com"


def main() -> None:
    port, redis_port, runs_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access lines in the test's output
    store = RedisStore(
        redis.Redis(host="127.0.0.1", port=redis_port, socket_timeout=2, socket_connect_timeout=2)
    )
    app = Flask(__name__)

    @app.post("/voice")
    @validate_twilio_request(token=TOKEN, base_url=BASE_URL, idempotency=store)
    def voice() -> Response:
        with open(runs_file, "a") as runs:
            runs.write("python\n")
        response = Response(f"<Response><Say>python {request.form['Digits']}</Say></Response>", status=302)
        response.headers["Location"] = "/next?from=python"
        response.headers.add("Set-Cookie", "who=python; Path=/")
        response.headers.add("Set-Cookie", "n=1")
        response.content_type = "text/xml"
        return response

    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    sys.stdin.read()  # runs until the test closes our standard input
    server.shutdown()


if __name__ == "__main__":
    main()
