"""An app that verifies nothing, for `twsig proxy` tests: it records every request it receives.

Prints its port on the first line of standard output. `GET /__received` answers the requests recorded
so far as JSON (method, target, headers as sent, body in base64) and is not recorded itself;
`/slow?ms=N` waits N milliseconds before answering; any other request gets 200 and a JSON echo.
"""

import base64
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

RECEIVED: list[dict[str, object]] = []
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.command == "GET" and self.path == "/__received":
            with LOCK:
                payload = json.dumps(RECEIVED).encode()
            self.reply(payload)
            return
        seen = {
            "app": "python",
            "method": self.command,
            "target": self.path,
            "headers": [[name, value] for name, value in self.headers.items()],
            "body_b64": base64.b64encode(body).decode(),
        }
        with LOCK:
            RECEIVED.append(seen)
        query = parse_qs(urlsplit(self.path).query)
        if urlsplit(self.path).path == "/slow":
            time.sleep(int(query.get("ms", ["0"])[0]) / 1000)
        self.reply(json.dumps(seen).encode())

    def reply(self, payload: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Upstream", "python")
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = answer


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
