"""Python's `gql` against a running `gateway serve`: it fetches the schema by the standard
introspection query and checks every request against it before sending it."""

from __future__ import annotations

from gql import Client, GraphQLRequest, gql
from gql.transport.httpx import HTTPXAsyncTransport
from graphql import GraphQLInputObjectType, print_ast
from graphql.utilities import get_default_value_ast

from tests.clients.conftest import register
from tests.serving import Server

CREATE = gql(
    """
    mutation Create($input: CreateStrategyInput!) {
      createStrategy(input: $input) { strategy { name instrument broker environment config } }
    }
    """
)


async def test_gql_fetches_the_schema_and_creates_a_strategy_leaving_config_to_its_default(
    served: Server,
):
    token = await register(served, "gql@example.com")
    transport = HTTPXAsyncTransport(
        url=f"{served.base_url}/graphql", headers={"Authorization": f"Bearer {token}"}
    )
    client = Client(transport=transport, fetch_schema_from_transport=True)

    async with client as session:
        # gql validates the document against the fetched schema: `config` left out passes
        # only because the schema says it has a default.
        result = await session.execute(
            GraphQLRequest(
                CREATE,
                variable_values={
                    "input": {
                        "name": "Mean reversion",
                        "code": "pass",
                        "instrument": "BTCUSDT",
                        "broker": "binance",
                    }
                },
            )
        )

    assert client.schema is not None
    create_input = client.schema.type_map["CreateStrategyInput"]
    assert isinstance(create_input, GraphQLInputObjectType)
    config = create_input.fields["config"]
    default = get_default_value_ast(config)
    assert default is not None
    assert print_ast(default).replace(" ", "") == "{}"
    assert result == {
        "createStrategy": {
            "strategy": {
                "name": "Mean reversion",
                "instrument": "BTCUSDT",
                "broker": "binance",
                "environment": "TESTNET",
                "config": {},
            }
        }
    }
