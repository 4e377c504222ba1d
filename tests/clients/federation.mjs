// The gateway as a subgraph of a real supergraph: composed with @apollo/composition beside a
// second subgraph (@apollo/subgraph on @apollo/server) that extends User and Strategy and
// returns references to our strategies; then queried through Apollo Gateway and Hive Gateway,
// both directions, with the viewer's Authorization header forwarded.
//
// Everything runs in this one process: a counting proxy in front of the served gateway (it
// sees every request our side receives: whether it is an `_entities` call, how many
// representations, whether the Authorization header came along), the second subgraph, and
// both routers. Prints one JSON object.
//
// env: GATEWAY_URL (the served gateway, FEDERATION=true), TOKEN (the viewer's access token),
//      STRATEGY_IDS (JSON: the viewer's strategy ids), COUNTS (JSON: how many references the
//      second subgraph's root field returns, one query per count)
import http from 'node:http';
import { composeServices } from '@apollo/composition';
import { ApolloGateway, RemoteGraphQLDataSource } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { createGatewayRuntime } from '@graphql-hive/gateway';
import { parse } from 'graphql';

const GATEWAY_URL = process.env.GATEWAY_URL;
const TOKEN = process.env.TOKEN;
const STRATEGY_IDS = JSON.parse(process.env.STRATEGY_IDS);
const COUNTS = JSON.parse(process.env.COUNTS);

// --- a counting proxy in front of our subgraph ---------------------------------------------
let seen = [];
const proxy = http.createServer(async (req, res) => {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const body = Buffer.concat(chunks);
  const { query = '', variables = {} } = JSON.parse(body.toString() || '{}');
  seen.push({
    entities: /\b_entities\b/.test(query),
    representations: variables.representations?.length ?? null,
    authorization: req.headers.authorization === `Bearer ${TOKEN}`,
  });
  const answer = await fetch(`${GATEWAY_URL}/graphql`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json',
      ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
    },
    body,
  });
  res.writeHead(answer.status, { 'content-type': 'application/json' });
  res.end(Buffer.from(await answer.arrayBuffer()));
});
const listen = (server) =>
  new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
const ours = `http://127.0.0.1:${await listen(proxy)}/graphql`;

// --- the second subgraph -------------------------------------------------------------------
const theirTypeDefs = parse(`
  extend schema @link(url: "https://specs.apollo.dev/federation/v2.9", import: ["@key", "@shareable"])

  type User @key(fields: "id") {
    id: ID!
    "A field this subgraph adds to our User."
    badges: [String!]!
  }

  type Strategy @key(fields: "id") {
    id: ID!
    "A field this subgraph adds to our Strategy."
    rating: Int!
  }

  "Their own page type, sharing our PageInfo."
  type Picks {
    items: [Strategy!]!
    pageInfo: PageInfo!
  }

  type PageInfo @shareable {
    hasNextPage: Boolean!
    hasPreviousPage: Boolean!
    startCursor: String
    endCursor: String
  }

  type Query {
    "References to our strategies."
    featured(count: Int!): [Strategy!]!
    picks: Picks!
  }
`);
const theirs = new ApolloServer({
  schema: buildSubgraphSchema({
    typeDefs: theirTypeDefs,
    resolvers: {
      Query: {
        featured: (_, { count }) => STRATEGY_IDS.slice(0, count).map((id) => ({ id })),
        picks: () => ({
          items: STRATEGY_IDS.slice(0, 2).map((id) => ({ id })),
          pageInfo: { hasNextPage: false, hasPreviousPage: false, startCursor: null, endCursor: null },
        }),
      },
      User: { badges: () => ['early-adopter'] },
      Strategy: { rating: ({ id }) => STRATEGY_IDS.indexOf(id) + 1 },
    },
  }),
});
const { url: theirUrl } = await startStandaloneServer(theirs, { listen: { port: 0 } });

// --- composition ---------------------------------------------------------------------------
const sdlAnswer = await (
  await fetch(ours, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: '{ _service { sdl } }' }),
  })
).json();
const ourSdl = sdlAnswer.data._service.sdl;
const compose = (sdl) =>
  composeServices([
    { name: 'gateway', url: ours, typeDefs: parse(sdl) },
    { name: 'second', url: theirUrl, typeDefs: theirTypeDefs },
  ]);
const composed = compose(ourSdl);
const report = {
  composition: {
    errors: (composed.errors ?? []).map((e) => e.message),
    hints: (composed.hints ?? []).map((h) => ({ code: h.definition.code, message: h.message })),
  },
  // Our SDL with PageInfo not @shareable: the second subgraph's PageInfo must not compose.
  withoutShareable: (
    compose(ourSdl.replace('type PageInfo @shareable', 'type PageInfo')).errors ?? []
  ).map((e) => e.extensions?.code ?? e.message),
};
if (report.composition.errors.length) {
  console.log(JSON.stringify(report));
  process.exit(0);
}
const supergraphSdl = composed.supergraphSdl;

// --- the routers ---------------------------------------------------------------------------
const apollo = new ApolloServer({
  gateway: new ApolloGateway({
    supergraphSdl,
    buildService: ({ url }) =>
      new RemoteGraphQLDataSource({
        url,
        // The viewer's Authorization header, passed on to every subgraph.
        willSendRequest({ request, context }) {
          if (context.authorization) request.http.headers.set('authorization', context.authorization);
        },
      }),
  }),
});
const { url: apolloUrl } = await startStandaloneServer(apollo, {
  listen: { port: 0 },
  context: async ({ req }) => ({ authorization: req.headers.authorization }),
});

const hive = createGatewayRuntime({
  supergraph: supergraphSdl,
  logging: false,
  propagateHeaders: {
    fromClientToSubgraphs: ({ request }) => ({ authorization: request.headers.get('authorization') }),
  },
});
const hiveServer = http.createServer(hive);
const hiveUrl = `http://127.0.0.1:${await listen(hiveServer)}/graphql`;

// --- queries across both subgraphs, both directions ----------------------------------------
const FEATURED = `query Featured($count: Int!) {
  featured(count: $count) { id rating name status owner { email badges } }
}`;
const MINE = `query Mine {
  me { email badges strategies(first: 50) { edges { node { id name rating } } } }
}`;

async function ask(url, query, variables) {
  seen = [];
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ query, variables }),
  });
  return { body: await response.json(), ours: seen };
}

for (const [name, url] of [
  ['apollo', apolloUrl],
  ['hive', hiveUrl],
]) {
  report[name] = { featured: {} };
  for (const count of COUNTS) {
    report[name].featured[count] = await ask(url, FEATURED, { count });
  }
  report[name].mine = await ask(url, MINE, {});
}

console.log(JSON.stringify(report));
await Promise.all([apollo.stop(), theirs.stop(), hive.dispose?.()]);
hiveServer.close();
proxy.close();
process.exit(0);
