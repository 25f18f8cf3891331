"use strict";
// Real servers on loopback and a raw HTTP client for the web-helper tests.
const http = require("http");

/** Listens on a free loopback port; resolves the port. */
function listen(server) {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve(server.address().port));
  });
}

/**
 * One HTTP/1.1 request with node's http client. holdBody: send the headers (with the declared
 * Content-Length) and no body byte until the response arrives, which proves the server answered
 * without reading the body. chunked: send the body with Transfer-Encoding: chunked.
 */
function request(port, { method = "POST", path = "/sms", headers = {}, body = "", chunked = false, holdBody = false, timeoutMs = 5000 }) {
  return new Promise((resolve, reject) => {
    const data = Buffer.isBuffer(body) ? body : Buffer.from(body);
    const all = { Host: `127.0.0.1:${port}`, ...headers };
    if (!chunked && all["Content-Length"] === undefined && (data.length > 0 || method === "POST")) all["Content-Length"] = String(data.length);
    if (chunked) all["Transfer-Encoding"] = "chunked";
    const req = http.request({ host: "127.0.0.1", port, method, path, headers: all, agent: false, setHost: false });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no response in ${timeoutMs} ms`));
    }, timeoutMs);
    req.on("response", (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") });
        req.destroy();
      });
      res.on("error", () => {});
    });
    req.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    if (holdBody) {
      req.flushHeaders();
      return;
    }
    if (chunked) {
      for (let i = 0; i < data.length; i += 65536) req.write(data.subarray(i, i + 65536));
      req.end();
    } else req.end(data);
  });
}

/** A logger that keeps its lines (for the refusal-line assertions). */
function memoryLogger() {
  const lines = [];
  return { lines, warn: (line) => lines.push(["warn", line]), error: (line) => lines.push(["error", line]), info: (line) => lines.push(["info", line]) };
}

/** A multipart/form-data body carrying the same fields. */
function multipart(pairs, boundary = "XBOUNDARYX") {
  let out = "";
  for (const [name, value] of pairs) out += `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
  return { body: out + `--${boundary}--\r\n`, type: `multipart/form-data; boundary=${boundary}` };
}

module.exports = { listen, request, memoryLogger, multipart };
