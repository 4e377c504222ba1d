"""GraphQL Code Generator with strict scalars, configured by the README's own block, against
a running `gateway serve`; `tsc` typechecks what it writes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.clients.conftest import run_tool
from tests.serving import Server

README = Path(__file__).parents[2] / "README.md"
README_URL = "http://localhost:8000/graphql"
README_OUTPUT = "src/graphql/types.ts"

# Uses the generated types as a client would: amounts and times are strings, config is
# unknown until narrowed, the enums are the schema's.
USAGE = """\
import type { Scalars, Strategy, Trade, CreateStrategyInput } from "./types";
import { StrategyStatus } from "./types";

const amount: Scalars["Decimal"]["output"] = "1234.5";
const day: Scalars["Date"]["output"] = "2026-02-01";
const at: Scalars["DateTime"]["output"] = "2026-02-01T09:30:00+00:00";
export function describe(trade: Trade, strategy: Strategy): string {
  const fees: string = trade.fees;
  const entered: string = trade.entryTime;
  const config: unknown = strategy.config;
  const running: boolean = strategy.status === StrategyStatus.Active;
  return [amount, day, at, fees, entered, String(config), String(running)].join(" ");
}
export const input: CreateStrategyInput = {
  name: "n", code: "c", instrument: "BTCUSDT", broker: "binance",
};
"""


def readme_codegen_config() -> str:
    """The YAML block that follows the README's `codegen-config` marker."""
    found = re.search(r"<!-- codegen-config:[^>]*-->\s*```yaml\n(.*?)```", README.read_text(), re.S)
    if found is None:
        pytest.fail("README.md has no codegen-config block")
    return found.group(1)


async def test_codegen_with_the_readmes_scalar_map_writes_types_that_typecheck(
    served: Server, tmp_path: Path
):
    config = readme_codegen_config()
    assert README_URL in config
    assert README_OUTPUT in config
    output = tmp_path / "types.ts"
    (tmp_path / "codegen.yml").write_text(
        config.replace(README_URL, f"{served.base_url}/graphql").replace(README_OUTPUT, str(output))
    )

    generated = await run_tool("graphql-codegen", "--config", str(tmp_path / "codegen.yml"))

    assert generated.returncode == 0, generated.stdout + generated.stderr
    types = output.read_text()
    scalars = re.search(r"export type Scalars = \{(.*?)\n\};", types, re.S)
    assert scalars is not None, types[:2000]
    assert "any" not in scalars.group(1), scalars.group(1)
    # Left out of `input` in USAGE: optional because the schema gives it a default.
    assert "config?: InputMaybe<Scalars['JSON']['input']>;" in types
    (tmp_path / "usage.ts").write_text(USAGE)
    checked = await run_tool(
        "tsc",
        "--noEmit",
        "--strict",
        "--target",
        "es2022",
        "--module",
        "es2022",
        "--moduleResolution",
        "bundler",
        str(output),
        str(tmp_path / "usage.ts"),
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
