"use strict";
// WebSocket handshakes (Media Streams, ConversationRelay; rule R5) for `ws` servers created with
// {noServer: true}: Twilio signs the handshake GET over the wss:// (public https) or ws:// (public http)
// URL, query as sent, no body.
//
//   const wss = new WebSocketServer({ noServer: true });
//   server.on("upgrade", verifyUpgrade(wss, { authToken, baseUrl: "https://example.com" }));
//   wss.on("connection", (socket, request) => { request.twilio ... });
//
// A refused handshake is answered with its HTTP status (400, 403, 500) and the socket closed: never a 101.
const http = require("http");
const { Guard, Refusal, checkNodeRequest, isUpgrade } = require("./web");

function reject(socket, status, reason) {
  const body = Buffer.from(reason, "utf8");
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] || ""}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\n\r\n` +
      body.toString("latin1"),
    "latin1"
  );
}

/**
 * Verifies one handshake: resolves the verification (also set as req.twilio) or rejects with a Refusal
 * (logged). For servers that call wss.handleUpgrade themselves.
 */
async function verifyHandshake(guard, req) {
  if (!isUpgrade(req)) throw guard.refuse(400, "not a WebSocket handshake", req.url, "expected GET with Upgrade: websocket and Connection: upgrade");
  const { verified } = await checkNodeRequest(guard, req, { body: Buffer.alloc(0) });
  req.twilio = verified;
  return verified;
}

/** An 'upgrade' listener: verify, then hand the socket to `wss` (its 'connection' event gets (ws, req)). */
function verifyUpgrade(wss, options = {}) {
  const guard = options instanceof Guard ? options : new Guard(options);
  return function onUpgrade(req, socket, head) {
    verifyHandshake(guard, req).then(
      () => {
        wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws, req));
      },
      (error) => {
        if (error instanceof Refusal) reject(socket, error.status, error.reason);
        else {
          guard.logger.error(`twilio webhook handshake failed: ${error && error.message}`);
          reject(socket, 500, "internal error");
        }
      }
    );
  };
}

module.exports = { verifyUpgrade, verifyHandshake, Guard };
