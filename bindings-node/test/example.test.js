"use strict";
// examples/media-streams.js, run as written: the signed voice webhook gets <Connect><Stream>, the signed
// wss:// handshake of the stream it names upgrades and messages flow; an unsigned one gets 400.
const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("path");
const { WebSocket } = require("ws");
const { pkg } = require("./helpers");
const { listen, request, memoryLogger } = require("./servers");

test("the Media Streams example: TwiML route and verified stream route", async (t) => {
  const token = "example-token-0123456789abcdef";
  const publicUrl = "https://voice.example.com";
  const { createServer } = require(path.join(__dirname, "..", "examples", "media-streams.js"));
  const server = createServer({ publicUrl, authToken: token, logger: memoryLogger() });
  const port = await listen(server);
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const signer = new pkg.Validator(token);
  const body = "CallSid=CA1&From=%2B15551234567";
  const twiml = await request(port, {
    path: "/voice",
    headers: { "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signer.sign({ url: `${publicUrl}/voice`, body }) },
    body,
  });
  assert.equal(twiml.status, 200);
  const stream = /<Stream url="([^"]+)"\/>/.exec(twiml.body)[1];
  assert.equal(stream, "wss://voice.example.com/media");

  const open = (headers) =>
    new Promise((resolve, reject) => {
      const socket = new WebSocket(`ws://127.0.0.1:${port}/media`, { headers });
      socket.once("open", () => resolve({ socket }));
      socket.once("unexpected-response", (req, res) => resolve({ status: res.statusCode }));
      socket.once("error", reject);
    });
  const { socket } = await open({ "X-Twilio-Signature": signer.sign({ url: stream, body: "" }) });
  assert.ok(socket, "the signed wss:// handshake upgraded");
  const mark = new Promise((resolve) => socket.once("message", (data) => resolve(JSON.parse(data.toString()))));
  socket.send(JSON.stringify({ event: "connected" }));
  socket.send(JSON.stringify({ event: "start", streamSid: "MZ9" }));
  assert.deepEqual(await mark, { event: "mark", streamSid: "MZ9", mark: { name: "greeting" } });
  socket.close();
  assert.equal((await open({})).status, 400);
  assert.equal((await open({ "X-Twilio-Signature": signer.sign({ url: "https://voice.example.com/media", body: "" }) })).status, 403);
});
