// The Relay documents the relay-compiler test compiles against schema.graphql (see
// test_relay.py): a @refetchable fragment on Strategy (refetched through `node`), a
// @connection on `strategies` paginated by a @refetchable fragment on Query, and the
// mutations that update the connection with Relay's own directives, no updater code.
import { graphql } from "relay-runtime";

graphql`
  fragment StrategyList_strategy on Strategy
  @refetchable(queryName: "StrategyCardRefetchQuery") {
    id
    name
    status
  }
`;

graphql`
  fragment StrategyList_query on Query
  @refetchable(queryName: "StrategyListPaginationQuery")
  @argumentDefinitions(
    count: { type: "Int", defaultValue: 2 }
    cursor: { type: "String" }
  ) {
    strategies(first: $count, after: $cursor)
    @connection(key: "StrategyList_strategies") {
      totalCount
      edges {
        node {
          id
          ...StrategyList_strategy
        }
      }
    }
  }
`;

graphql`
  query StrategyListQuery {
    ...StrategyList_query
  }
`;

graphql`
  mutation StrategyListCreateMutation(
    $input: CreateStrategyInput!
    $connections: [ID!]!
  ) {
    createStrategy(input: $input) {
      strategy
      @prependNode(connections: $connections, edgeTypeName: "StrategyEdge") {
        id
        name
      }
    }
  }
`;

graphql`
  mutation StrategyListRenameMutation($id: ID!, $input: UpdateStrategyInput!) {
    updateStrategy(id: $id, input: $input) {
      id
      name
    }
  }
`;

graphql`
  mutation StrategyListDeleteMutation($id: ID!, $connections: [ID!]!) {
    deleteStrategy(id: $id) {
      deletedId @deleteEdge(connections: $connections)
    }
  }
`;
