// Apollo Client 4 against the served gateway: the cached `strategies` list follows
// createStrategy, updateStrategy and deleteStrategy without refetchQueries. What it takes
// is the README's client setup: a field policy for the connection, an `update` that
// prepends the created Strategy, and one that evicts the deleted one by its id; a rename
// needs nothing (the payload is the Strategy with its id, normalized in place).
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { relayStylePagination } from "@apollo/client/utilities";

const [url, token] = process.argv.slice(2);
const operations = [];
const client = new ApolloClient({
  link: new HttpLink({
    uri: url,
    headers: { authorization: `Bearer ${token}` },
    fetch: (input, init) => {
      operations.push(JSON.parse(init.body).operationName);
      return fetch(input, init);
    },
  }),
  cache: new InMemoryCache({
    typePolicies: { Query: { fields: { strategies: relayStylePagination(["status"]) } } },
  }),
});

const STRATEGIES = gql`
  query Strategies {
    strategies(first: 20) {
      edges { cursor node { id name } }
      pageInfo { hasNextPage endCursor }
    }
  }
`;
const CREATE = gql`
  mutation Create($input: CreateStrategyInput!) {
    createStrategy(input: $input) { id name }
  }
`;
const RENAME = gql`
  mutation Rename($id: ID!, $name: String!) {
    updateStrategy(id: $id, input: { name: $name }) { id name }
  }
`;
const DELETE = gql`
  mutation Delete($id: ID!) {
    deleteStrategy(id: $id) { deletedId }
  }
`;

const cached = () =>
  client.readQuery({ query: STRATEGIES }).strategies.edges.map((edge) => edge.node.name);

await client.query({ query: STRATEGIES });
const initial = cached();

const { data: created } = await client.mutate({
  mutation: CREATE,
  variables: { input: { name: "From Apollo", code: "pass", instrument: "BTCUSDT", broker: "binance" } },
  update(cache, { data }) {
    cache.modify({
      fields: {
        strategies(existing, { toReference }) {
          const edge = { __typename: "StrategyEdge", cursor: "", node: toReference(data.createStrategy) };
          return { ...existing, edges: [edge, ...existing.edges] };
        },
      },
    });
  },
});
const afterCreate = cached();

await client.mutate({
  mutation: RENAME,
  variables: { id: created.createStrategy.id, name: "Renamed by Apollo" },
});
const afterRename = cached();

await client.mutate({
  mutation: DELETE,
  variables: { id: created.createStrategy.id },
  update(cache, { data }) {
    cache.evict({ id: cache.identify({ __typename: "Strategy", id: data.deleteStrategy.deletedId }) });
    cache.gc();
  },
});
const afterDelete = cached();

console.log(JSON.stringify({ initial, afterCreate, afterRename, afterDelete, operations }));
