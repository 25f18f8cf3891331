// An app that verifies nothing, for `twsig proxy` tests, on plain node:http: it records every request.
//
// Prints its port on the first line of standard output. `GET /__received` answers the requests
// recorded so far as JSON (method, target, headers as sent, body in base64) and is not recorded
// itself; any other request gets 200 and a JSON echo.
import http from "node:http";

const received = [];

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    let payload;
    if (req.method === "GET" && req.url === "/__received") {
      payload = JSON.stringify(received);
    } else {
      const headers = [];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        headers.push([req.rawHeaders[i], req.rawHeaders[i + 1]]);
      }
      const seen = {
        app: "node",
        method: req.method,
        target: req.url,
        headers,
        body_b64: body.toString("base64"),
      };
      received.push(seen);
      payload = JSON.stringify(seen);
    }
    res.writeHead(200, {
      "Content-Type": "application/json",
      "Content-Length": Buffer.byteLength(payload),
      "X-Upstream": "node",
    });
    res.end(payload);
  });
});

server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${server.address().port}\n`);
});
