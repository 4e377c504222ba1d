// Apollo Client 4 against the served gateway: the cached `strategies` list follows
// createStrategy, updateStrategy and deleteStrategy with no cache code at all (no `update`,
// no cache.modify or cache.evict, no refetchQueries, no type policy). What it takes is the
// selections: create and delete select the root Query of their payload (`query`) with the
// list's own fragment, which Apollo writes into ROOT_QUERY as if it had queried it; a rename
// is the Strategy with its id, normalized in place. Prints what the cache and a watching
// component saw, the operations sent, and every warning Apollo logged.
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";

const [url, token] = process.argv.slice(2);
const operations = [];
const warnings = [];
for (const level of ["warn", "error"]) {
  console[level] = (...args) => warnings.push(args.map(String).join(" "));
}
const client = new ApolloClient({
  link: new HttpLink({
    uri: url,
    headers: { authorization: `Bearer ${token}` },
    fetch: (input, init) => {
      operations.push(JSON.parse(init.body).operationName);
      return fetch(input, init);
    },
  }),
  cache: new InMemoryCache(),
});

// The list as the screen shows it; the mutations re-select the same fragment.
const LIST = gql`
  fragment StrategyList on Query {
    strategies(first: 20) {
      edges { cursor node { id name } }
      pageInfo { hasNextPage endCursor }
    }
  }
`;
const STRATEGIES = gql`
  query Strategies { ...StrategyList }
  ${LIST}
`;
const CREATE = gql`
  mutation Create($input: CreateStrategyInput!) {
    createStrategy(input: $input) {
      strategy { id name }
      query { ...StrategyList }
    }
  }
  ${LIST}
`;
const RENAME = gql`
  mutation Rename($id: ID!, $name: String!) {
    updateStrategy(id: $id, input: { name: $name }) { id name }
  }
`;
const DELETE = gql`
  mutation Delete($id: ID!) {
    deleteStrategy(id: $id) {
      deletedId
      query { ...StrategyList }
    }
  }
  ${LIST}
`;

const names = (data) => data.strategies.edges.map((edge) => edge.node.name);
const cached = () => names(client.readQuery({ query: STRATEGIES }));

await client.query({ query: STRATEGIES });

// A component watching the list (from the cache): what it last rendered.
let rendered = null;
const watching = client
  .watchQuery({ query: STRATEGIES })
  .subscribe(({ data }) => { if (data?.strategies) rendered = names(data); });
const settle = () => new Promise((resolve) => setTimeout(resolve, 50));
await settle();
const initial = { cached: cached(), rendered };

const { data: created } = await client.mutate({
  mutation: CREATE,
  variables: { input: { name: "From Apollo", code: "pass", instrument: "BTCUSDT", broker: "binance" } },
});
await settle();
const afterCreate = { cached: cached(), rendered };
const id = created.createStrategy.strategy.id;

await client.mutate({ mutation: RENAME, variables: { id, name: "Renamed by Apollo" } });
await settle();
const afterRename = { cached: cached(), rendered };

const { data: deleted } = await client.mutate({ mutation: DELETE, variables: { id } });
await settle();
const afterDelete = { cached: cached(), rendered };

watching.unsubscribe();
console.log(
  JSON.stringify({
    initial,
    afterCreate,
    afterRename,
    afterDelete,
    createdId: id,
    deletedId: deleted.deleteStrategy.deletedId,
    operations,
    warnings,
  }),
);
