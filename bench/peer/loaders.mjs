// Reads, one query per batch of keys, and the per-request DataLoaders over them.
//
// The same storage shapes the gateway reads (DESIGN.md, "Storage shapes"): Mongoose-style
// documents in three Mongo databases, snake_case rows in two PostgreSQL databases.
import DataLoader from 'dataloader';
import { ObjectId } from 'mongodb';
import pg from 'pg';

// Deleted strategies and credentials leave a tombstone document; reads skip them.
const LIVE = { tombstone: { $exists: false } };
const SECRET_FIELDS = [
  'accessToken',
  'brokerUsername',
  'brokerPassword',
  'totpSecret',
  'apiKey',
  'apiSecret',
];
const TRADE_COLUMNS =
  'id, user_id, strategy_id, strategy_name, instrument, side, quantity, entry_price, ' +
  'exit_price, entry_time, exit_time, pnl, fees, status, broker, environment';
const EVENT_COLUMNS = 'id, user_id, kind, subject_id, at, data';

// Times and days come back as text (see format.mjs); numerics and bigints are text already.
const RAW = (value) => value;
const RAW_TYPES = new Set([1082 /* date */, 1114 /* timestamp */, 1184 /* timestamptz */]);
const types = {
  getTypeParser: (oid, format) => (RAW_TYPES.has(oid) ? RAW : pg.types.getTypeParser(oid, format)),
};

export function sqlPool(url) {
  return new pg.Pool({
    connectionString: url,
    max: 10,
    options: '-c TimeZone=UTC',
    types,
  });
}

const oids = (ids) => ids.map((id) => new ObjectId(id));

function groupBy(items, keyOf) {
  const groups = new Map();
  for (const item of items) {
    const key = keyOf(item);
    const group = groups.get(key);
    if (group) group.push(item);
    else groups.set(key, [item]);
  }
  return groups;
}

// --- users ---------------------------------------------------------------------------

async function findUsers(db, ids) {
  const docs = await db
    .collection('users')
    .find({ _id: { $in: oids(ids) } }, { projection: { password: 0 } })
    .toArray();
  const byId = new Map(docs.map((doc) => [doc._id.toHexString(), doc]));
  return ids.map((id) => byId.get(id) ?? null);
}

// --- strategies ----------------------------------------------------------------------

async function countStrategies(db, userIds) {
  const rows = await db
    .collection('strategies')
    .aggregate([
      { $match: { userId: { $in: oids(userIds) }, ...LIVE } },
      { $group: { _id: { user: '$userId', status: '$status' }, n: { $sum: 1 } } },
    ])
    .toArray();
  const counts = new Map(userIds.map((id) => [id, {}]));
  for (const row of rows) {
    const perUser = counts.get(row._id.user.toHexString());
    const status = String(row._id.status).toUpperCase();
    perUser[status] = (perUser[status] ?? 0) + row.n;
  }
  return userIds.map((id) => counts.get(id));
}

// Keys { userId, status, first }: the newest `first` strategies of a user in a status.
async function strategyPages(db, keys) {
  const pages = new Map();
  for (const group of groupBy(keys, (key) => `${key.status}|${key.first}`).values()) {
    const { status, first } = group[0];
    const users = [...new Set(group.map((key) => key.userId))];
    let cursor = db
      .collection('strategies')
      .find({ userId: { $in: oids(users) }, status: status.toLowerCase(), ...LIVE })
      .sort({ userId: 1, _id: -1 });
    // A limit caps the whole result, so only a single user's page can have one.
    if (users.length === 1) cursor = cursor.limit(first);
    const byUser = groupBy(await cursor.toArray(), (doc) => doc.userId.toHexString());
    for (const key of group) {
      pages.set(strategyPageKey(key), (byUser.get(key.userId) ?? []).slice(0, first));
    }
  }
  return keys.map((key) => pages.get(strategyPageKey(key)));
}

const strategyPageKey = (key) => `${key.userId}|${key.status}|${key.first}`;

// --- credentials ---------------------------------------------------------------------

// Which secrets each user has stored: the server computes the flags, so no ciphertext
// crosses the wire.
async function credentialsStatus(db, userIds) {
  const flags = Object.fromEntries(
    SECRET_FIELDS.map((name) => [
      `has_${name}`,
      { $cond: [{ $ifNull: [`$${name}`, false] }, true, false] },
    ]),
  );
  const docs = await db
    .collection('credentials')
    .aggregate([
      { $match: { userId: { $in: oids(userIds) }, ...LIVE } },
      { $project: { userId: 1, broker: 1, clientId: 1, updatedAt: 1, ...flags } },
    ])
    .toArray();
  const byUser = new Map(
    docs.map((doc) => [
      doc.userId.toHexString(),
      {
        broker: doc.broker ?? null,
        clientId: doc.clientId ?? null,
        configured: SECRET_FIELDS.filter((name) => doc[`has_${name}`]),
      },
    ]),
  );
  return userIds.map((id) => byUser.get(id) ?? null);
}

// --- trades --------------------------------------------------------------------------

const pageKey = (key) => `${key.userId}|${key.first}`;

// Keys { userId, first }: each user's newest `first` rows of `table`, newest first by
// `order` (one query for every key of the same `first`).
async function newestPerUser(pool, keys, { table, columns, order }) {
  const pages = new Map();
  for (const group of groupBy(keys, (key) => key.first).values()) {
    const first = group[0].first;
    const users = [...new Set(group.map((key) => key.userId))];
    const { rows } =
      users.length === 1
        ? await pool.query(
            `SELECT ${columns} FROM ${table} WHERE user_id = $1 ORDER BY ${order} LIMIT $2`,
            [users[0], first],
          )
        : await pool.query(
            `SELECT ${columns} FROM (SELECT ${columns}, row_number() OVER ` +
              `(PARTITION BY user_id ORDER BY ${order}) AS rank ` +
              `FROM ${table} WHERE user_id = ANY($1)) ranked WHERE rank <= $2 ` +
              `ORDER BY user_id, ${order}`,
            [users, first],
          );
    const byUser = groupBy(rows, (row) => row.user_id);
    for (const key of group) pages.set(pageKey(key), byUser.get(key.userId) ?? []);
  }
  return keys.map((key) => pages.get(pageKey(key)));
}

// A user's newest trades by entry time.
const tradePages = (pool, keys) =>
  newestPerUser(pool, keys, {
    table: "trades",
    columns: TRADE_COLUMNS,
    order: "entry_time DESC, id DESC",
  });

// Per user, the net PnL of closed trades by UTC day of exit, oldest first:
// [{ day: 'YYYY-MM-DD', net: '12.5' }].
async function dailyNetPnl(pool, userIds) {
  const { rows } = await pool.query(
    "SELECT user_id, (exit_time AT TIME ZONE 'UTC')::date AS day, " +
      'sum(coalesce(pnl, 0) - fees) AS net FROM trades ' +
      "WHERE user_id = ANY($1) AND status = 'closed' AND exit_time IS NOT NULL " +
      'GROUP BY user_id, day ORDER BY user_id, day',
    [userIds],
  );
  const byUser = groupBy(rows, (row) => row.user_id);
  return userIds.map((id) => byUser.get(id) ?? []);
}

// --- analytics -----------------------------------------------------------------------

// A user's newest activity events.
const activityPages = (pool, keys) =>
  newestPerUser(pool, keys, {
    table: "activity_events",
    columns: EVENT_COLUMNS,
    order: "at DESC, id DESC",
  });

// --- per request ---------------------------------------------------------------------

// A fresh set for every request: a loader caches only within the request it serves.
export function createLoaders({ users, strategies, credentials, trades, analytics }) {
  return {
    user: new DataLoader((ids) => findUsers(users, ids)),
    strategyCounts: new DataLoader((ids) => countStrategies(strategies, ids)),
    strategyPage: new DataLoader((keys) => strategyPages(strategies, keys), {
      cacheKeyFn: strategyPageKey,
    }),
    credentials: new DataLoader((ids) => credentialsStatus(credentials, ids)),
    tradePage: new DataLoader((keys) => tradePages(trades, keys), { cacheKeyFn: pageKey }),
    dailyPnl: new DataLoader((ids) => dailyNetPnl(trades, ids)),
    activityPage: new DataLoader((keys) => activityPages(analytics, keys), {
      cacheKeyFn: pageKey,
    }),
  };
}
