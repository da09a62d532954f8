// A stand-in for the credit service samples/weather/plugin.ts calls: GET /score?name=<name>
// answers 200 with {"score": <number>}. Usage: node samples/weather/credit-server.mjs [port]
import { createServer } from "node:http";

const port = Number(process.argv[2] ?? 8080);
createServer((request, response) => {
  const url = new URL(request.url ?? "/", "http://localhost");
  if (request.method !== "GET" || url.pathname !== "/score") {
    response.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: "only GET /score?name=… is served" }));
    return;
  }
  const name = url.searchParams.get("name") ?? "";
  const score = 300 + ([...name].reduce((sum, c) => sum + c.charCodeAt(0), 0) % 551);
  response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ score }));
}).listen(port, "127.0.0.1", () => console.log(`credit service: http://127.0.0.1:${port}/score?name=…`));
