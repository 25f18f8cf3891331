"use strict";
// WebSocket handshakes (rule R5) through a real `ws` server on loopback and a real `ws` client: a
// Media Streams-style exchange over a signed wss:// / ws:// handshake; forged or missing signatures get
// their HTTP status and no upgrade.
const test = require("node:test");
const assert = require("node:assert/strict");
const http = require("http");
const { WebSocket, WebSocketServer } = require("ws");
const { pkg, requirePackage } = require("./helpers");
const { listen, memoryLogger } = require("./servers");
const { verifyUpgrade } = requirePackage("lib/ws.js");

const TOKEN = "ws-test-token-0123456789abcdef";
const signer = new pkg.Validator(TOKEN);

async function mediaServer(options) {
  const server = http.createServer((req, res) => res.end("not a websocket"));
  const wss = new WebSocketServer({ noServer: true });
  server.on("upgrade", verifyUpgrade(wss, options));
  wss.on("connection", (socket, req) => {
    socket.on("message", (data) => {
      const event = JSON.parse(data.toString());
      // Media Streams: "connected" then "start" in; a "mark" out once the stream started.
      if (event.event === "start") socket.send(JSON.stringify({ event: "mark", streamSid: event.streamSid, mark: { name: req.twilio.candidate } }));
    });
  });
  const port = await listen(server);
  return { port, close: () => new Promise((r) => { wss.close(); server.close(r); server.closeAllConnections(); }) };
}

/** Opens a client; resolves {socket} on 101 or {status} when the server answered otherwise. */
function connect(port, path, headers) {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers });
    socket.once("open", () => resolve({ socket }));
    socket.once("unexpected-response", (req, res) => {
      resolve({ status: res.statusCode });
      req.destroy();
    });
    socket.once("error", reject);
  });
}

test("ws: a signed handshake upgrades and messages flow both ways; forged and missing are refused", async (t) => {
  const logger = memoryLogger();
  const server = await mediaServer({ authToken: TOKEN, logger });
  t.after(() => server.close());
  const path = "/media?callSid=CA123";
  // The app sees http://, Twilio signed the ws:// twin of the URL.
  const signature = signer.sign({ url: `ws://127.0.0.1:${server.port}${path}`, body: "" });
  const { socket, status } = await connect(server.port, path, { "X-Twilio-Signature": signature });
  assert.equal(status, undefined, "upgraded");
  const mark = new Promise((resolve) => socket.once("message", (data) => resolve(JSON.parse(data.toString()))));
  socket.send(JSON.stringify({ event: "connected", protocol: "Call", version: "1.0.0" }));
  socket.send(JSON.stringify({ event: "start", streamSid: "MZ1", start: { callSid: "CA123" } }));
  assert.deepEqual(await mark, { event: "mark", streamSid: "MZ1", mark: { name: "as_given" } });
  socket.close();

  assert.equal((await connect(server.port, path, { "X-Twilio-Signature": signature.replace(/^./, (c) => (c === "A" ? "B" : "A")) })).status, 403);
  assert.equal((await connect(server.port, path, {})).status, 400);
  // The common mistake: a handshake verified as http:// when Twilio signed ws://, or the reverse.
  const httpSigned = signer.sign({ url: `http://127.0.0.1:${server.port}${path}`, body: "" });
  assert.equal((await connect(server.port, path, { "X-Twilio-Signature": httpSigned })).status, 403);
  const lines = logger.lines.filter(([level]) => level === "warn").map(([, line]) => line);
  assert.ok(lines.some((line) => line.startsWith(`twilio webhook refused: 403 the signature does not match the request; url=ws://127.0.0.1:${server.port}${path}; `)), lines.join("\n"));
});

test("ws: behind a trusted proxy (X-Forwarded-Proto: https) the wss:// URL is verified", async (t) => {
  const server = await mediaServer({ authToken: TOKEN, trustedProxies: ["127.0.0.1"], logger: memoryLogger() });
  t.after(() => server.close());
  const path = "/media";
  const signature = signer.sign({ url: `wss://stream.example.com${path}`, body: "" });
  const { socket } = await connect(server.port, path, { "X-Twilio-Signature": signature, "X-Forwarded-Proto": "https", "X-Forwarded-Host": "stream.example.com" });
  assert.ok(socket, "upgraded");
  socket.close();
  // baseUrl https://... -> wss://
  const based = await mediaServer({ authToken: TOKEN, baseUrl: "https://stream.example.com", logger: memoryLogger() });
  t.after(() => based.close());
  const ok = await connect(based.port, path, { "X-Twilio-Signature": signature });
  assert.ok(ok.socket, "upgraded with baseUrl");
  ok.socket.close();
  const wrong = await connect(based.port, path, { "X-Twilio-Signature": signer.sign({ url: `https://stream.example.com${path}`, body: "" }) });
  assert.equal(wrong.status, 403);
});

test("ws: a handshake with a second Host line, or a Host holding a comma, is 400 and never upgraded", async (t) => {
  const logger = memoryLogger();
  const server = await mediaServer({ authToken: TOKEN, logger });
  t.after(() => server.close());
  const host = `127.0.0.1:${server.port}`;
  const path = "/media?callSid=CA11";
  const signature = signer.sign({ url: `ws://${host}${path}`, body: "" });
  const net = require("net");
  const reply = (hosts) =>
    new Promise((resolve, reject) => {
      const socket = net.connect(server.port, "127.0.0.1", () => {
        socket.write(`GET ${path} HTTP/1.1\r\n${hosts.map((h) => `Host: ${h}\r\n`).join("")}Upgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n` +
          `X-Twilio-Signature: ${signature}\r\n\r\n`);
      });
      let text = "";
      socket.setEncoding("latin1");
      socket.on("data", (chunk) => {
        text += chunk;
        if (text.includes("\r\n\r\n")) socket.destroy();
      });
      socket.on("close", () => resolve(text));
      socket.on("error", reject);
    });
  assert.match(await reply([host]), /^HTTP\/1\.1 101 /, "one Host: upgraded");
  assert.match(await reply([host, "evil.example"]), /^HTTP\/1\.1 400 /);
  assert.match(await reply([`${host},evil.example`]), /^HTTP\/1\.1 400 /);
  const refusals = logger.lines.filter(([level]) => level === "warn").map(([, line]) => line);
  assert.match(refusals[0], /^twilio webhook refused: 400 the request has more than one Host header; /);
  assert.match(refusals[1], /^twilio webhook refused: 400 the Host header ".*,evil\.example" is not a host; /);
});

test("ws: an HTTP/1.0 GET with upgrade headers is not a handshake (400, never upgraded)", async (t) => {
  const logger = memoryLogger();
  const server = await mediaServer({ authToken: TOKEN, logger });
  t.after(() => server.close());
  const path = "/media?callSid=CA10";
  const signature = signer.sign({ url: `ws://127.0.0.1:${server.port}${path}`, body: "" });
  const net = require("net");
  const response = await new Promise((resolve, reject) => {
    const socket = net.connect(server.port, "127.0.0.1", () => {
      socket.write(`GET ${path} HTTP/1.0\r\nHost: 127.0.0.1:${server.port}\r\nUpgrade: websocket\r\n` +
        `Connection: upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n` +
        `X-Twilio-Signature: ${signature}\r\n\r\n`);
    });
    let text = "";
    socket.on("data", (chunk) => { text += chunk; });
    socket.on("end", () => resolve(text));
    socket.on("close", () => resolve(text));
    socket.on("error", reject);
  });
  assert.match(response, /^HTTP\/1\.[01] 400 /, response);
});

