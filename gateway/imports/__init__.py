"""Importers that move an existing platform's data into the gateway's sources
(`gateway import ...`; README, "Moving an existing platform in")."""
