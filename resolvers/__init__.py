"""Resolvers: queries, mutations and the cross-source aggregates, reading only through loaders."""
