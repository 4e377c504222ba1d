// A frontend on another origin, in headless Chromium: a page served here (as a Vite or
// Next dev server would serve one) signs in to the gateway and loads the dashboard, with
// the browser's own CORS checks deciding what it may read.
//
//   node cors.mjs GATEWAY_URL PAGE_PORT EMAIL PASSWORD
//
// The page is served on PAGE_PORT as http://localhost:PAGE_PORT (the origin the gateway
// allows) and, the same page, as http://127.0.0.1:PAGE_PORT (an origin it does not).
// Prints one JSON object: what each origin's page got.
import http from "node:http";
import { chromium } from "playwright-core";
import { launchOptions } from "./browser.mjs";

const [gateway, pagePort, email, password] = process.argv.slice(2);

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>A frontend on another origin</title>
<pre id="result">running</pre>
<script type="module">
const gateway = new URLSearchParams(location.search).get("gateway") + "/graphql";
async function graphql(query, variables, token) {
  const headers = {
    "content-type": "application/json",
    accept: "application/graphql-response+json",
    "apollographql-client-name": "cors-test",
    "apollographql-client-version": "1.0.0",
    traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
  };
  if (token) headers.authorization = "Bearer " + token;
  const response = await fetch(gateway, {
    method: "POST",
    headers,
    body: JSON.stringify({ query, variables }),
  });
  return { body: await response.json(), requestId: response.headers.get("x-request-id") };
}
const outcome = {};
try {
  const signIn = await graphql(
    "mutation SignIn($email: String!, $password: String!) { login(email: $email, password: $password) { accessToken } }",
    { email: ${JSON.stringify(email)}, password: ${JSON.stringify(password)} },
  );
  const token = signIn.body.data.login.accessToken;
  const dashboard = await graphql(
    "query Dashboard { dashboard { user { email } strategyCounts { total } pnl { allTime } } }",
    null,
    token,
  );
  outcome.dashboard = dashboard.body;
  outcome.requestId = dashboard.requestId;
} catch (error) {
  outcome.failed = error.name + ": " + error.message;
}
document.getElementById("result").textContent = JSON.stringify(outcome);
</script>`;

const server = http.createServer((request, response) => {
  response.writeHead(200, { "content-type": "text/html; charset=utf-8" });
  response.end(PAGE);
});
await new Promise((resolve) => server.listen(Number(pagePort), "127.0.0.1", resolve));

const browser = await chromium.launch(launchOptions());
try {
  const outcomes = {};
  for (const host of ["localhost", "127.0.0.1"]) {
    const page = await browser.newPage();
    const consoleErrors = [];
    page.on("console", (message) => {
      if (message.type() === "error") consoleErrors.push(message.text());
    });
    await page.goto(`http://${host}:${pagePort}/?gateway=${encodeURIComponent(gateway)}`);
    await page.waitForFunction(() => document.getElementById("result").textContent !== "running");
    outcomes[host] = {
      ...JSON.parse(await page.textContent("#result")),
      corsErrors: consoleErrors.filter((text) => text.includes("CORS")).length,
    };
    await page.close();
  }
  console.log(JSON.stringify(outcomes));
} finally {
  await browser.close();
  server.close();
}
