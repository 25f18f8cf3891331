"use strict";
// A mixed fleet: one Node (Express + RedisStore) and one Python (Flask + bindings-python's RedisStore)
// instance behind one public URL, on one redis-server this test starts: a delivery handled by either is
// answered from the store when its retry reaches the other (the shared key and v2 layout, rule R2).
// Needs the project venv with twilio_signature installed (make python-install): TWILIO_SIGNATURE_PYTHON
// names its python (default ../.venv/bin/python); without it the test is skipped, saying why, unless
// TWILIO_SIGNATURE_REQUIRE_FLEET=1 makes that a failure.
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("fs");
const os = require("os");
const path = require("path");
const http = require("http");
const net = require("net");
const readline = require("readline");
const { spawn, spawnSync } = require("child_process");
const express = require("express");
const { createClient } = require("redis");
const { pkg, requirePackage } = require("./helpers");
const { listen, request, memoryLogger } = require("./servers");
const { RedisStore } = requirePackage("lib/idempotency.js");
const { expressWebhook } = requirePackage("lib/express.js");

const PYTHON = process.env.TWILIO_SIGNATURE_PYTHON || path.join(__dirname, "..", "..", ".venv", "bin", "python");
const TOKEN = "fleet-token-0123456789abcdef0123";
const BASE_URL = "https://hooks.example.com";

function pythonReady() {
  if (!fs.existsSync(PYTHON)) return `no python at ${PYTHON}`;
  const probe = spawnSync(PYTHON, ["-c", "import flask, redis, twilio_signature.idempotency as m; m.StoredResponse(200, None, b'', headers=())"]);
  return probe.status === 0 ? null : `the venv lacks twilio_signature (v2 retry store), flask or redis: ${probe.stderr.toString().trim().split("\n").pop()}`;
}

const freePort = () =>
  new Promise((resolve) => {
    const probe = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });

async function startRedis() {
  const port = await freePort();
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
  for (let i = 0; i < 100; i++) {
    const up = await new Promise((resolve) => {
      const socket = net.connect(port, "127.0.0.1", () => socket.end(() => resolve(true)));
      socket.on("error", () => resolve(false));
    });
    if (up) return { port, stop: () => child.kill() };
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill();
  throw new Error("redis-server did not start");
}

const why = pythonReady();
const skip = why && process.env.TWILIO_SIGNATURE_REQUIRE_FLEET !== "1" ? `mixed fleet skipped: ${why}` : false;

test("a mixed fleet (Node + Python on one Redis) answers each retry once", { skip }, async (t) => {
  assert.equal(why, null, why);
  const redis = await startRedis();
  // One after-hook, in order: the Node client disconnects, the Python app exits, then the server stops.
  let client = null;
  let py = null;
  t.after(async () => {
    if (client) await Promise.resolve(client.disconnect()).catch(() => {});
    if (py) py.stdin.end();
    redis.stop();
  });
  const runsFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "fleet-")), "runs");
  fs.writeFileSync(runsFile, "");
  const runs = () => fs.readFileSync(runsFile, "utf8").split("\n").filter(Boolean);

  const pyPort = await freePort();
  py = spawn(PYTHON, [path.join(__dirname, "fleet_python_app.py"), String(pyPort), String(redis.port), runsFile], { stdio: ["pipe", "pipe", "inherit"] });
  const first = await new Promise((resolve) => readline.createInterface({ input: py.stdout }).once("line", resolve));
  assert.equal(first, "ready");

  client = createClient({ socket: { host: "127.0.0.1", port: redis.port, connectTimeout: 1000 } });
  await client.connect();
  const app = express();
  app.post("/voice", expressWebhook({ authToken: TOKEN, baseUrl: BASE_URL, idempotency: new RedisStore(client), logger: memoryLogger() }), (req, res) => {
    fs.appendFileSync(runsFile, "node\n");
    res.status(302).set("Location", "/next?from=node").append("Set-Cookie", "who=node; Path=/").append("Set-Cookie", "n=1").type("text/xml").send(`<Response><Say>node ${req.body.Digits}</Say></Response>`);
  });
  const server = http.createServer(app);
  const nodePort = await listen(server);
  t.after(() => server.close());

  const signer = new pkg.Validator(TOKEN);
  const deliver = (port, digits, token) => {
    const body = `CallSid=CA1&Digits=${digits}`;
    const headers = {
      "Content-Type": "application/x-www-form-urlencoded",
      "X-Twilio-Signature": signer.sign({ url: `${BASE_URL}/voice`, body }),
      "I-Twilio-Idempotency-Token": token,
    };
    return request(port, { path: "/voice", headers, body });
  };

  // First delivery on Node, its retry on Python.
  const a1 = await deliver(nodePort, "1", "RC-fleet-1");
  const a2 = await deliver(pyPort, "1", "RC-fleet-1");
  assert.deepEqual(runs(), ["node"]);
  assert.equal(a1.status, 302);
  assert.equal(a2.status, 302);
  assert.equal(a2.headers["idempotent-replayed"], "true");
  assert.equal(a2.headers.location, "/next?from=node");
  assert.deepEqual(a2.headers["set-cookie"], ["who=node; Path=/", "n=1"]);
  assert.equal(a2.body, "<Response><Say>node 1</Say></Response>");

  // First delivery on Python, its retry on Node.
  const b1 = await deliver(pyPort, "2", "RC-fleet-2");
  const b2 = await deliver(nodePort, "2", "RC-fleet-2");
  assert.deepEqual(runs(), ["node", "python"]);
  assert.equal(b1.status, 302);
  assert.equal(b2.status, 302);
  assert.equal(b2.headers["idempotent-replayed"], "true");
  assert.equal(b2.headers.location, "/next?from=python");
  assert.deepEqual(b2.headers["set-cookie"], ["who=python; Path=/", "n=1"]);
  assert.match(b2.headers["content-type"], /^text\/xml/);
  assert.equal(b2.body, "<Response><Say>python 2</Say></Response>");
});
