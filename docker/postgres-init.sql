-- Run once by the postgres image, on an empty data volume, as POSTGRES_USER.
-- The gateway keeps trades and analytics in two databases (TRADES_DATABASE_URL,
-- ANALYTICS_DATABASE_URL); `gateway migrate` creates their tables.
CREATE DATABASE trades;
CREATE DATABASE analytics;
