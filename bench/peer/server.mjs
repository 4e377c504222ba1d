// The benchmark's peer: the gateway's `dashboard` as a Node team would serve it by hand
// with Apollo Server 4 (graphql-js), per-request DataLoaders, the official MongoDB driver
// and node-postgres, over the same five databases and with the same token check.
//
//   PEER_PORT=4100 MONGO_USER_URI=... MONGO_STRATEGY_URI=... MONGO_CREDENTIALS_URI=... \
//   TRADES_DATABASE_URL=postgresql://... ANALYTICS_DATABASE_URL=postgresql://... \
//   JWT_SECRET=... node bench/peer/server.mjs
//
// Started by `python -m bench.dashboard` (which installs it with `npm ci` first); it
// prints `peer listening on <url>` once it answers. No response caching of any kind.
import { createHash } from 'node:crypto';

import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { GraphQLError } from 'graphql';
import jwt from 'jsonwebtoken';
import { MongoClient } from 'mongodb';

import { addDays, formatMoney, globalId, isoFromDate, isoFromPg, money, parseMoney, todayUtc } from './format.mjs';
import { createLoaders, sqlPool } from './loaders.mjs';

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};

const MAX_PAGE_SIZE = 100;
const ACTIVITY_KINDS = new Set([
  'ACCOUNT_CREATED', 'SIGNED_IN', 'PROFILE_UPDATED', 'PASSWORD_CHANGED', 'CREDENTIALS_SAVED',
  'CREDENTIALS_DELETED', 'STRATEGY_CREATED', 'STRATEGY_UPDATED', 'STRATEGY_DELETED',
  'STRATEGY_STARTED', 'STRATEGY_PAUSED', 'STRATEGY_RESUMED', 'STRATEGY_STOPPED',
]);

const typeDefs = `#graphql
  scalar DateTime
  scalar Date
  scalar Decimal
  scalar JSON

  enum Role { USER ADMIN }
  enum StrategyStatus { ACTIVE PAUSED STOPPED ERROR }
  enum Environment { LIVE TESTNET }
  enum TradeSide { BUY SELL }
  enum TradeStatus { OPEN CLOSED }
  enum ActivityKind {
    ACCOUNT_CREATED SIGNED_IN PROFILE_UPDATED PASSWORD_CHANGED CREDENTIALS_SAVED
    CREDENTIALS_DELETED STRATEGY_CREATED STRATEGY_UPDATED STRATEGY_DELETED STRATEGY_STARTED
    STRATEGY_PAUSED STRATEGY_RESUMED STRATEGY_STOPPED OTHER
  }

  type Query {
    "Everything the home screen shows, from all five sources."
    dashboard: Dashboard!
  }

  type Dashboard {
    user: User!
    strategyCounts: StrategyCounts
    activeStrategies(first: Int = 10): [Strategy!]
    recentTrades(first: Int = 10): [Trade!]
    pnl: PnlSummary
    equityCurve(days: Int = 30): [EquityPoint!]
    credentialsConfigured: Boolean
    recentActivity(first: Int = 10): [ActivityEvent!]
  }

  type User {
    id: ID!
    email: String!
    firstName: String!
    lastName: String!
    phone: String
    role: Role!
    createdAt: DateTime!
    updatedAt: DateTime!
  }

  type StrategyCounts { active: Int! paused: Int! stopped: Int! error: Int! total: Int! }

  type Strategy {
    id: ID!
    name: String!
    code: String!
    status: StrategyStatus!
    containerId: String
    instrument: String!
    broker: String!
    environment: Environment!
    config: JSON!
    lastAction: String
    autoReconnect: Boolean!
    errorMessage: String
    errorCount: Int!
    lastHeartbeat: DateTime
    createdAt: DateTime!
    updatedAt: DateTime!
  }

  type Trade {
    id: ID!
    strategyId: ID!
    strategyName: String!
    instrument: String!
    side: TradeSide!
    quantity: Decimal!
    entryPrice: Decimal!
    exitPrice: Decimal
    entryTime: DateTime!
    exitTime: DateTime
    pnl: Decimal
    fees: Decimal!
    netPnl: Decimal
    status: TradeStatus!
    broker: String
    environment: Environment
  }

  type PnlSummary { today: Decimal! sevenDays: Decimal! thirtyDays: Decimal! allTime: Decimal! }

  type EquityPoint { day: Date! netPnl: Decimal! equity: Decimal! }

  type ActivityEvent { id: ID! kind: ActivityKind! subjectId: String at: DateTime! data: JSON! }
`;

// --- the token check: what gateway/core/auth.py checks -------------------------------

const keyId = (secret) =>
  createHash('sha256').update(`trading-gateway jwt kid:${secret}`).digest('hex').slice(0, 16);

const secrets = [env('JWT_SECRET'), process.env.JWT_PREVIOUS_SECRET].filter(Boolean);
const KEYS = new Map(secrets.map((secret) => [keyId(secret), secret]).reverse());
const ISSUER = env('JWT_ISSUER', 'trading-gateway');
const AUDIENCE = env('JWT_AUDIENCE', 'trading-platform');
const REQUIRED_CLAIMS = ['exp', 'iat', 'sub', 'iss', 'aud'];

const unauthenticated = (message) =>
  new GraphQLError(message, { extensions: { code: 'UNAUTHENTICATED' } });
const badInput = (message, field) =>
  new GraphQLError(message, { extensions: { code: 'BAD_USER_INPUT', field } });

// The claims of a valid access token (HS256, the current or previous secret by `kid`,
// issuer, audience, expiry, `typ` access, an integer `ver`); anything else throws.
function verifyToken(token) {
  if (token.startsWith('rt_') && !token.includes('.')) {
    throw unauthenticated('A refresh token is not an access token: exchange it with refreshToken.');
  }
  const decoded = jwt.decode(token, { complete: true });
  const secret = decoded && typeof decoded.header.kid === 'string' && KEYS.get(decoded.header.kid);
  if (!secret) throw unauthenticated('The access token is invalid.');
  let claims;
  try {
    claims = jwt.verify(token, secret, { algorithms: ['HS256'], audience: AUDIENCE, issuer: ISSUER });
  } catch (error) {
    throw unauthenticated(
      error instanceof jwt.TokenExpiredError
        ? 'The access token has expired.'
        : 'The access token is invalid.',
    );
  }
  if (
    REQUIRED_CLAIMS.some((name) => claims[name] === undefined) ||
    claims.typ !== 'access' ||
    !Number.isInteger(claims.ver) ||
    typeof claims.sub !== 'string'
  ) {
    throw unauthenticated('The access token is invalid.');
  }
  return { userId: claims.sub, tokenVersion: claims.ver };
}

// --- shaping records as the gateway shows them ---------------------------------------

const createdOf = (doc) => doc.createdAt ?? doc._id.getTimestamp();

function userOf(doc) {
  const created = createdOf(doc);
  return {
    id: globalId('User', doc._id.toHexString()),
    email: doc.email,
    firstName: doc.firstName ?? '',
    lastName: doc.lastName ?? '',
    phone: doc.phone ?? null,
    role: String(doc.role ?? 'user').toUpperCase(),
    createdAt: isoFromDate(created),
    updatedAt: isoFromDate(doc.updatedAt ?? created),
  };
}

function strategyOf(doc) {
  const created = createdOf(doc);
  return {
    id: globalId('Strategy', doc._id.toHexString()),
    name: doc.name ?? '',
    code: doc.code ?? '',
    status: String(doc.status ?? 'stopped').toUpperCase(),
    containerId: doc.containerId ?? null,
    instrument: doc.instrument ?? '',
    broker: doc.broker ?? '',
    environment: String(doc.environment ?? 'testnet').toUpperCase(),
    config: doc.config ?? {},
    lastAction: doc.lastAction ?? null,
    autoReconnect: Boolean(doc.autoReconnect),
    errorMessage: doc.errorMessage ?? null,
    errorCount: Number(doc.errorCount ?? 0),
    lastHeartbeat: isoFromDate(doc.lastHeartbeat),
    createdAt: isoFromDate(created),
    updatedAt: isoFromDate(doc.updatedAt ?? created),
  };
}

function tradeOf(row) {
  const closed = row.status === 'closed' && row.pnl !== null;
  return {
    id: globalId('Trade', row.id),
    strategyId: globalId('Strategy', row.strategy_id),
    strategyName: row.strategy_name,
    instrument: row.instrument,
    side: row.side.toUpperCase(),
    quantity: money(row.quantity),
    entryPrice: money(row.entry_price),
    exitPrice: money(row.exit_price),
    entryTime: isoFromPg(row.entry_time),
    exitTime: isoFromPg(row.exit_time),
    pnl: money(row.pnl),
    fees: money(row.fees),
    netPnl: closed ? formatMoney(parseMoney(row.pnl) - parseMoney(row.fees)) : null,
    status: row.status.toUpperCase(),
    broker: row.broker,
    environment: row.environment ? row.environment.toUpperCase() : null,
  };
}

function eventOf(row) {
  return {
    id: globalId('ActivityEvent', row.id),
    kind: ACTIVITY_KINDS.has(row.kind) ? row.kind : 'OTHER',
    // A strategy's events name it by its global id.
    subjectId:
      row.subject_id !== null && row.kind.startsWith('STRATEGY_')
        ? globalId('Strategy', row.subject_id)
        : row.subject_id,
    at: isoFromPg(row.at),
    data: row.data ?? {},
  };
}

// PnL over the last 1 / 7 / 30 UTC days including today, and all time.
function pnlWindows(daily, today) {
  const week = addDays(today, -6);
  const month = addDays(today, -29);
  let day = 0n, seven = 0n, thirty = 0n, all = 0n;
  for (const { day: on, net } of daily) {
    const amount = parseMoney(net);
    all += amount;
    if (on > today) continue;
    if (on === today) day += amount;
    if (on >= week) seven += amount;
    if (on >= month) thirty += amount;
  }
  return {
    today: formatMoney(day),
    sevenDays: formatMoney(seven),
    thirtyDays: formatMoney(thirty),
    allTime: formatMoney(all),
  };
}

// Cumulative net PnL at the end of each of the last `days` UTC days.
function equityCurve(daily, today, days) {
  const start = addDays(today, -(days - 1));
  const byDay = new Map();
  let equity = 0n;
  for (const { day, net } of daily) {
    if (day < start) equity += parseMoney(net);
    else byDay.set(day, parseMoney(net));
  }
  const curve = [];
  for (let offset = 0; offset < days; offset += 1) {
    const day = addDays(start, offset);
    const net = byDay.get(day) ?? 0n;
    equity += net;
    curve.push({ day, netPnl: formatMoney(net), equity: formatMoney(equity) });
  }
  return curve;
}

function checkFirst(value, field) {
  if (!Number.isInteger(value) || value < 0 || value > MAX_PAGE_SIZE) {
    throw badInput(`'${field}' must be between 0 and ${MAX_PAGE_SIZE}.`, field);
  }
  return value;
}

// --- resolvers -----------------------------------------------------------------------

// Every dashboard field reads alongside the viewer check (is the token revoked?) and
// gives its value only once the check has passed, as the gateway's do.
const checked = (read) => async (dashboard, args, ctx) => {
  const [value] = await Promise.all([read(dashboard, args, ctx), ctx.viewer()]);
  return value;
};

const resolvers = {
  Query: {
    dashboard: (_root, _args, ctx) => {
      if (ctx.claims === null) throw unauthenticated('Sign in first.');
      return { userId: ctx.claims.userId };
    },
  },
  Dashboard: {
    user: async (_dashboard, _args, ctx) => userOf(await ctx.viewer()),
    strategyCounts: checked(async ({ userId }, _args, { loaders }) => {
      const counts = await loaders.strategyCounts.load(userId);
      const count = (status) => counts[status] ?? 0;
      return {
        active: count('ACTIVE'),
        paused: count('PAUSED'),
        stopped: count('STOPPED'),
        error: count('ERROR'),
        total: Object.values(counts).reduce((sum, n) => sum + n, 0),
      };
    }),
    activeStrategies: checked(async ({ userId }, { first }, { loaders }) => {
      const key = { userId, status: 'ACTIVE', first: checkFirst(first, 'first') };
      return (await loaders.strategyPage.load(key)).map(strategyOf);
    }),
    recentTrades: checked(async ({ userId }, { first }, { loaders }) => {
      const key = { userId, first: checkFirst(first, 'first') };
      return (await loaders.tradePage.load(key)).map(tradeOf);
    }),
    pnl: checked(async ({ userId }, _args, { loaders }) =>
      pnlWindows(await loaders.dailyPnl.load(userId), todayUtc()),
    ),
    equityCurve: checked(async ({ userId }, { days }, { loaders }) =>
      equityCurve(await loaders.dailyPnl.load(userId), todayUtc(), checkFirst(days, 'days')),
    ),
    credentialsConfigured: checked(async ({ userId }, _args, { loaders }) => {
      const status = await loaders.credentials.load(userId);
      return Boolean(status && status.configured.length);
    }),
    recentActivity: checked(async ({ userId }, { first }, { loaders }) => {
      const key = { userId, first: checkFirst(first, 'first') };
      return (await loaders.activityPage.load(key)).map(eventOf);
    }),
  },
};

// --- wiring --------------------------------------------------------------------------

async function main() {
  const mongo = [
    env('MONGO_USER_URI'),
    env('MONGO_STRATEGY_URI'),
    env('MONGO_CREDENTIALS_URI'),
  ].map((uri) => new MongoClient(uri));
  await Promise.all(mongo.map((client) => client.connect()));
  const pools = [env('TRADES_DATABASE_URL'), env('ANALYTICS_DATABASE_URL')].map(sqlPool);
  const sources = {
    users: mongo[0].db(),
    strategies: mongo[1].db(),
    credentials: mongo[2].db(),
    trades: pools[0],
    analytics: pools[1],
  };

  const server = new ApolloServer({ typeDefs, resolvers, stopOnTerminationSignals: false });
  const { url } = await startStandaloneServer(server, {
    listen: { host: '127.0.0.1', port: Number(env('PEER_PORT', '4100')) },
    context: async ({ req }) => {
      const header = req.headers.authorization ?? '';
      let claims = null;
      try {
        claims = header.startsWith('Bearer ') ? verifyToken(header.slice(7)) : null;
      } catch (error) {
        // Thrown here, outside any resolver: a 401 rather than Apollo's default 500.
        error.extensions.http = { status: 401 };
        throw error;
      }
      const loaders = createLoaders(sources);
      let viewer = null;
      return {
        claims,
        loaders,
        // The token's user, read once per request: it must exist, not be being deleted,
        // and still be at the token's version (a bump revokes every token).
        viewer() {
          viewer ??= loaders.user.load(claims.userId).then((user) => {
            if (
              user === null ||
              user.deletingAt != null ||
              Number(user.tokenVersion ?? 0) !== claims.tokenVersion
            ) {
              throw unauthenticated('The access token has been revoked.');
            }
            return user;
          });
          return viewer;
        },
      };
    },
  });
  console.log(`peer listening on ${url}`);

  const stop = async () => {
    await server.stop();
    await Promise.all([...mongo.map((client) => client.close()), ...pools.map((p) => p.end())]);
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

await main();
