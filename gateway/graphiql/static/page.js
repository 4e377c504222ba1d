// The gateway's GraphiQL page: GraphiQL with the explorer plugin, and a sign-in bar.
//
// The session (access and refresh tokens) lives in this closure only: never in
// localStorage, sessionStorage or a cookie, and never in GraphiQL's headers editor
// (whose contents GraphiQL would keep with `shouldPersistHeaders`, which stays off).
// Every request GraphiQL sends gets `Authorization: Bearer <token>` added here, unless
// the headers editor sets its own. Closing or reloading the tab signs out.
(function () {
  "use strict";

  const endpoint = location.origin + location.pathname;
  const DEFAULT_QUERY = `# Sign in above, then run this (Ctrl-Enter):
# your dashboard, from all five databases
# in one request.
query Dashboard {
  dashboard {
    user { email firstName lastName }
    strategyCounts { active paused total }
    pnl { today sevenDays allTime }
    credentialsConfigured
    recentTrades(first: 5) {
      instrument side quantity netPnl
    }
  }
}
`;
  const AUTH_FIELDS = "accessToken refreshToken expiresAt user { email }";
  const SIGN_IN = `mutation SignIn($email: String!, $password: String!) {
  login(email: $email, password: $password) { ${AUTH_FIELDS} }
}`;
  const REFRESH = `mutation Refresh($refreshToken: String!) {
  refreshToken(refreshToken: $refreshToken) { ${AUTH_FIELDS} }
}`;
  const SIGN_OUT = "mutation SignOut($refreshToken: String!) { logout(refreshToken: $refreshToken) }";
  // Refresh an access token this long before it expires.
  const REFRESH_MARGIN_MS = 30000;

  let session = null; // { accessToken, refreshToken, expiresAt (ms), email }
  let refreshing = null; // the one refresh under way: a refresh token is single-use

  const form = document.getElementById("sign-in");
  const signedIn = document.getElementById("signed-in");
  const viewer = document.getElementById("viewer");
  const status = document.getElementById("session-status");

  async function post(query, variables, token) {
    const headers = { "content-type": "application/json", accept: "application/json" };
    if (token) headers.authorization = "Bearer " + token;
    const response = await fetch(endpoint, {
      method: "POST",
      headers,
      body: JSON.stringify({ query, variables }),
    });
    const body = await response.json();
    if (body.errors && body.errors.length) {
      throw new Error(body.errors.map((error) => error.message).join(" "));
    }
    return body.data;
  }

  function keep(auth) {
    session = {
      accessToken: auth.accessToken,
      refreshToken: auth.refreshToken,
      expiresAt: Date.parse(auth.expiresAt),
      email: auth.user.email,
    };
  }

  async function refresh() {
    try {
      keep((await post(REFRESH, { refreshToken: session.refreshToken })).refreshToken);
    } catch (error) {
      session = null;
      show("Your session ended (" + error.message + "): sign in again.");
      restart();
    }
  }

  // The access token to send now, refreshed first when it is about to expire.
  async function accessToken() {
    if (session && session.expiresAt - Date.now() < REFRESH_MARGIN_MS) {
      refreshing = refreshing || refresh().finally(() => (refreshing = null));
      await refreshing;
    }
    return session && session.accessToken;
  }

  async function fetchWithToken(input, init) {
    const headers = new Headers((init && init.headers) || {});
    const token = await accessToken();
    if (token && !headers.has("authorization")) headers.set("authorization", "Bearer " + token);
    return fetch(input, Object.assign({}, init, { headers }));
  }

  function show(message) {
    status.textContent = message;
  }

  function renderSession() {
    form.hidden = Boolean(session);
    signedIn.hidden = !session;
    viewer.textContent = session ? session.email : "";
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = new FormData(form);
    show("Signing in...");
    try {
      keep((await post(SIGN_IN, { email: fields.get("email"), password: fields.get("password") })).login);
      form.reset();
      show("");
      restart();
    } catch (error) {
      show("Sign-in failed: " + error.message);
    }
  });

  document.getElementById("sign-out").addEventListener("click", async () => {
    const ending = session;
    session = null;
    restart();
    show("Signed out.");
    try {
      await post(SIGN_OUT, { refreshToken: ending.refreshToken }, ending.accessToken);
    } catch (error) {
      show("Signed out here; the server said: " + error.message);
    }
  });

  const root = ReactDOM.createRoot(document.getElementById("graphiql"));
  const explorer = GraphiQLPluginExplorer.explorerPlugin();

  // A new fetcher makes GraphiQL load the schema again, as the new viewer may see it
  // (in production only an ADMIN may introspect).
  function restart() {
    renderSession();
    root.render(
      React.createElement(GraphiQL, {
        fetcher: GraphiQL.createFetcher({ url: endpoint, fetch: fetchWithToken }),
        plugins: [explorer],
        defaultQuery: DEFAULT_QUERY,
        isHeadersEditorEnabled: true,
        shouldPersistHeaders: false,
        inputValueDeprecation: true,
      }),
    );
  }

  restart();
})();
