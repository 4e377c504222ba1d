// Apollo Client 4's PersistedQueryLink (automatic persisted queries) against the served
// gateway. Two clients in turn run one query: the first has its hash missed, falls back to
// sending the query, and so registers it; the second, with nothing cached of its own, is
// answered from the hash alone. Our own fetch records every request and its answer.
import { createHash } from "node:crypto";
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";

const [url, token] = process.argv.slice(2);
const requests = [];

async function recordingFetch(input, init = {}) {
  const method = (init.method ?? "GET").toUpperCase();
  let sent;
  if (method === "GET") {
    const params = new URL(String(input)).searchParams;
    sent = {
      query: params.get("query"),
      extensions: JSON.parse(params.get("extensions") ?? "null"),
    };
  } else {
    sent = JSON.parse(init.body);
  }
  const response = await fetch(input, init);
  const answer = await response.clone().json();
  requests.push({
    method,
    status: response.status,
    sentQuery: Boolean(sent.query),
    hash: sent.extensions?.persistedQuery?.sha256Hash ?? null,
    codes: (answer.errors ?? []).map((error) => error.extensions?.code),
    data: answer.data ?? null,
  });
  return response;
}

function newClient() {
  const persisted = new PersistedQueryLink({
    sha256: (text) => createHash("sha256").update(text).digest("hex"),
    useGETForHashedQueries: true,
  });
  const http = new HttpLink({
    uri: url,
    headers: { authorization: `Bearer ${token}` },
    fetch: recordingFetch,
  });
  return new ApolloClient({ link: persisted.concat(http), cache: new InMemoryCache() });
}

const query = gql`
  query PersistedViewer {
    me {
      email
    }
  }
`;
const first = await newClient().query({ query, fetchPolicy: "network-only" });
const second = await newClient().query({ query, fetchPolicy: "network-only" });
console.log(JSON.stringify({ first: first.data, second: second.data, requests }));
