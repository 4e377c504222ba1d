// GraphQL Tools schema stitching over the served gateway: our live schema, introspected over
// HTTP, stitched beside a small local schema that adds `Strategy.riskScore` and owns
// `topStrategies`. Strategy is merged by `id`, through `strategiesByIds` on our side and
// `riskByStrategyIds` on the local one, each batched (key + argsFromKeys). One query
// crosses both ways; every call to each side is recorded by the root fields it asked for.
//
// argv: endpoint, access token, JSON of { "<strategy global id>": riskScore, ... } in the
// order topStrategies returns them.
import { buildHTTPExecutor } from "@graphql-tools/executor-http";
import { makeExecutableSchema } from "@graphql-tools/schema";
import { stitchSchemas } from "@graphql-tools/stitch";
import { schemaFromExecutor } from "@graphql-tools/wrap";
import { Kind, graphql } from "graphql";

const [endpoint, token, scoresJson] = process.argv.slice(2);
const scores = JSON.parse(scoresJson);
const calls = { gateway: [], local: [] };

function rootFields(document) {
  const operation = document.definitions.find((d) => d.kind === Kind.OPERATION_DEFINITION);
  return operation.selectionSet.selections.map((s) => s.name?.value ?? s.kind);
}

// The viewer's Authorization header, forwarded from the stitched request's context.
const http = buildHTTPExecutor({
  endpoint,
  headers: (request) =>
    request?.context?.authorization ? { authorization: request.context.authorization } : {},
});
const gatewayExecutor = async (request) => {
  const fields = rootFields(request.document);
  const result = await http(request);
  calls.gateway.push({ fields, variables: request.variables ?? {} });
  return result;
};

const local = makeExecutableSchema({
  typeDefs: /* GraphQL */ `
    type Strategy {
      id: ID!
      riskScore: Int
    }
    type Query {
      topStrategies: [Strategy]
      riskByStrategyIds(ids: [ID!]!): [Strategy]!
    }
  `,
  resolvers: {
    Query: {
      topStrategies: () => {
        calls.local.push({ fields: ["topStrategies"] });
        return Object.keys(scores).map((id) => ({ id, riskScore: scores[id] }));
      },
      riskByStrategyIds: (_root, { ids }) => {
        calls.local.push({ fields: ["riskByStrategyIds"], ids });
        return ids.map((id) => ({ id, riskScore: scores[id] ?? null }));
      },
    },
  },
});

const context = { authorization: `Bearer ${token}` };
const stitched = stitchSchemas({
  subschemas: [
    {
      schema: await schemaFromExecutor(gatewayExecutor, context),
      executor: gatewayExecutor,
      merge: {
        Strategy: {
          selectionSet: "{ id }",
          fieldName: "strategiesByIds",
          key: ({ id }) => id,
          argsFromKeys: (ids) => ({ ids }),
        },
      },
    },
    {
      schema: local,
      merge: {
        Strategy: {
          selectionSet: "{ id }",
          fieldName: "riskByStrategyIds",
          key: ({ id }) => id,
          argsFromKeys: (ids) => ({ ids }),
        },
      },
    },
  ],
});
calls.gateway.length = 0; // the introspection is not part of the query

const result = await graphql({
  schema: stitched,
  source: /* GraphQL */ `
    query Crossing {
      topStrategies {
        id
        name
        status
        riskScore
      }
      me {
        strategies {
          edges {
            node {
              id
              name
              riskScore
            }
          }
        }
      }
    }
  `,
  contextValue: context,
});
console.log(JSON.stringify({ result: JSON.parse(JSON.stringify(result)), calls }));
