// The gateway's own GraphiQL in headless Chromium, with every request to anything but
// the gateway blocked: sign in through the page's form, run the dashboard query (the
// page's default), read the answer off the page, open the explorer plugin, screenshot.
//
//   node graphiql.mjs GATEWAY_URL EMAIL PASSWORD SCREENSHOT
//
// Prints one JSON object: the answer shown, the requests that were blocked, the Content
// Security Policy violations and page errors seen, and where the token ended up.
import { chromium } from "playwright-core";
import { launchOptions } from "./browser.mjs";

const [gateway, email, password, screenshot] = process.argv.slice(2);
const origin = new URL(gateway).origin;

const browser = await chromium.launch(launchOptions());
try {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const blocked = [];
  const served = [];
  await context.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (url.origin === origin) {
      served.push(url.pathname);
      return route.continue();
    }
    blocked.push(url.href);
    return route.abort("blockedbyclient");
  });
  // Violations of the page's Content-Security-Policy, as the page itself sees them.
  await context.addInitScript(() => {
    window.__violations = [];
    document.addEventListener("securitypolicyviolation", (event) =>
      window.__violations.push(`${event.violatedDirective} ${event.blockedURI}`),
    );
  });
  const page = await context.newPage();
  const pageErrors = [];
  page.on("pageerror", (error) => pageErrors.push(String(error)));
  let token = null;
  page.on("response", async (response) => {
    if (response.request().method() !== "POST") return;
    const sent = response.request().postData() || "";
    if (sent.includes("SignIn")) token = (await response.json()).data.login.accessToken;
  });

  await page.goto(`${gateway}/graphql`, { waitUntil: "load" });
  await page.waitForSelector(".graphiql-container .graphiql-execute-button");

  await page.fill('#sign-in input[name="email"]', email);
  await page.fill('#sign-in input[name="password"]', password);
  await page.click('#sign-in button[type="submit"]');
  await page.waitForSelector("#signed-in:not([hidden])");
  const signedInAs = await page.textContent("#viewer");

  await page.waitForSelector(".graphiql-execute-button:not([disabled])");
  await page.click(".graphiql-execute-button");
  const readAnswer = () => {
    const editor = document.querySelector(".result-window .CodeMirror");
    return editor ? editor.CodeMirror.getValue() : "";
  };
  await page.waitForFunction(readAnswer);
  const answer = JSON.parse(await page.evaluate(readAnswer));

  await page.click('button[aria-label="Show GraphiQL Explorer"]');
  await page.waitForSelector(".graphiql-explorer-root");
  const explorer = await page.isVisible(".graphiql-explorer-root");
  await page.screenshot({ path: screenshot });

  const stored = await page.evaluate(() => ({
    localStorage: Object.entries(localStorage),
    sessionStorage: Object.entries(sessionStorage),
    cookie: document.cookie,
  }));
  const everywhere = JSON.stringify(stored);
  console.log(
    JSON.stringify({
      answer,
      signedInAs,
      explorer,
      blocked,
      served,
      violations: await page.evaluate(() => window.__violations),
      pageErrors,
      tokenSeen: Boolean(token),
      tokenStored: Boolean(token) && everywhere.includes(token),
      storedKeys: stored.localStorage.map(([key]) => key),
    }),
  );
} finally {
  await browser.close();
}
