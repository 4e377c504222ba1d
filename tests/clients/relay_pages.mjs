// relay-runtime against the served gateway, with the artifacts relay-compiler wrote:
// two pages of `strategies` merged into one connection in the store, a strategy refetched
// through `node(id:)`, then create / rename / delete updating the connection through
// @prependNode, normalization by id and @deleteEdge. Prints what the store holds.
import path from "node:path";
import { pathToFileURL } from "node:url";
import relay from "relay-runtime"; // a CommonJS package: its exports come as one object

const {
  ConnectionHandler,
  Environment,
  Network,
  RecordSource,
  Store,
  commitMutation,
  createOperationDescriptor,
  fetchQuery,
} = relay;

const [url, token, generated] = process.argv.slice(2);

async function artifact(name) {
  const file = pathToFileURL(path.join(generated, `${name}.graphql.js`)).href;
  return (await import(file)).default;
}

// The last answer of each operation, as the gateway sent it.
const answers = {};
const network = Network.create(async (params, variables) => {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: params.text, variables }),
  });
  answers[params.name] = await response.json();
  return answers[params.name];
});
const environment = new Environment({ network, store: new Store(new RecordSource()) });
const connectionId = ConnectionHandler.getConnectionID("client:root", "StrategyList_strategies");

function connection() {
  // Read the connection record as the store holds it (a no-op update, read only).
  let seen;
  environment.commitUpdate((store) => {
    const record = store.get(connectionId);
    const edges = record.getLinkedRecords("edges") ?? [];
    const pageInfo = record.getLinkedRecord("pageInfo");
    seen = {
      ids: edges.map((edge) => edge.getLinkedRecord("node").getDataID()),
      names: edges.map((edge) => edge.getLinkedRecord("node").getValue("name")),
      endCursor: pageInfo.getValue("endCursor"),
      hasNextPage: pageInfo.getValue("hasNextPage"),
    };
  });
  return seen;
}

function mutate(mutation, variables) {
  return new Promise((resolve, reject) => {
    commitMutation(environment, {
      mutation,
      variables,
      onCompleted: (data, errors) => (errors ? reject(new Error(JSON.stringify(errors))) : resolve(data)),
      onError: reject,
    });
  });
}

const listQuery = await artifact("StrategyListQuery");
const pageQuery = await artifact("StrategyListPaginationQuery");
const refetchQuery = await artifact("StrategyCardRefetchQuery");

// Both operations are retained, as a component holding them would.
environment.retain(createOperationDescriptor(listQuery, {}));
await fetchQuery(environment, listQuery, {}).toPromise();
const firstPage = connection();
const next = { count: 2, cursor: firstPage.endCursor };
environment.retain(createOperationDescriptor(pageQuery, next));
await fetchQuery(environment, pageQuery, next).toPromise();
const merged = connection();

await fetchQuery(environment, refetchQuery, { id: merged.ids[0] }).toPromise();
const refetched = answers.StrategyCardRefetchQuery.data;

const created = await mutate(await artifact("StrategyListCreateMutation"), {
  input: { name: "From Relay", code: "pass", instrument: "BTCUSDT", broker: "binance" },
  connections: [connectionId],
});
const afterCreate = connection();
const newId = created.createStrategy.strategy.id;
await mutate(await artifact("StrategyListRenameMutation"), {
  id: newId,
  input: { name: "Renamed by Relay" },
});
const afterRename = connection();
await mutate(await artifact("StrategyListDeleteMutation"), { id: newId, connections: [connectionId] });
const afterDelete = connection();

console.log(
  JSON.stringify({ firstPage, merged, refetched, newId, afterCreate, afterRename, afterDelete }),
);
