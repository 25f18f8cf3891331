"use strict";
// A voice webhook answering <Connect><Stream>, and the Media Streams WebSocket it points at, both
// verified (Express for the webhook, a `ws` server for the stream's handshake, signed over wss://).
//
//   TWILIO_AUTH_TOKEN=... PUBLIC_URL=https://example.ngrok.app node examples/media-streams.js
//
// test/example.test.js runs it against a loopback port.
const http = require("http");
const express = require("express");
const { WebSocketServer } = require("ws");
const { expressWebhook, verifyUpgrade } = require("..");

function createServer({ publicUrl, authToken, logger } = {}) {
  const options = { baseUrl: publicUrl, authToken, logger };
  const app = express();
  app.post("/voice", expressWebhook(options), (req, res) => {
    const stream = publicUrl.replace(/^http/, "ws") + "/media";
    res.type("text/xml").send(`<Response><Connect><Stream url="${stream}"/></Connect></Response>`);
  });
  const server = http.createServer(app);
  const wss = new WebSocketServer({ noServer: true });
  server.on("upgrade", verifyUpgrade(wss, options));
  wss.on("connection", (socket) => {
    socket.on("message", (data) => {
      const event = JSON.parse(data.toString());
      // A mark once the stream starts: Twilio echoes it back when the audio before it has played.
      if (event.event === "start") socket.send(JSON.stringify({ event: "mark", streamSid: event.streamSid, mark: { name: "greeting" } }));
    });
  });
  return server;
}

module.exports = { createServer };

if (require.main === module) {
  const server = createServer({ publicUrl: process.env.PUBLIC_URL || "http://127.0.0.1:3000" });
  server.listen(Number(process.env.PORT || 3000), "127.0.0.1");
}
