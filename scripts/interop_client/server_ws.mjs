// An echo server built on the Node `ws` package, for scripts/interop_client.sh.
// Usage: node server_ws.mjs [--tls CERT KEY]
// Listens on 127.0.0.1 with an ephemeral port, prints "PORT <n>" once ready,
// echoes every message (text as text, binary as binary) with permessage-deflate
// enabled, and exits when stdin closes.
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import { createRequire } from "node:module";

const require = createRequire(process.env.INTEROP_NODE_DIR + "/");
const { WebSocketServer } = require("ws");

const args = process.argv.slice(2);
const server = args[0] === "--tls"
  ? https.createServer({ cert: fs.readFileSync(args[1]), key: fs.readFileSync(args[2]) })
  : http.createServer();
const wss = new WebSocketServer({ server, perMessageDeflate: true, maxPayload: 8 * 1024 * 1024 });
wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
});
server.listen(0, "127.0.0.1", () => {
  console.log(`PORT ${server.address().port}`);
});
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
