"""The real client tools (Apollo Client, relay-compiler, graphql-codegen, headless Chromium,
graphql-schema-linter) against a running `gateway serve`."""
