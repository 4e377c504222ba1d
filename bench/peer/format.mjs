// The wire spellings the gateway uses, so both answers are the same JSON.
//
// - ids: Relay global ids, base64 of `Type:key` (standard alphabet, padded);
// - Decimal: exact amounts as plain digits without trailing zeros ("2", "-0.5"), never a
//   float on the way: amounts are numeric(28, 8) in PostgreSQL, summed here as BigInt
//   counts of 1e-8;
// - DateTime: UTC with an explicit offset and microseconds only when there are any, as
//   Python's `datetime.isoformat()` prints them ("2026-02-01T09:30:00.123000+00:00").

export const globalId = (type, key) => Buffer.from(`${type}:${key}`).toString('base64');

const SCALE = 8;
const UNIT = 10n ** BigInt(SCALE);

// An exact amount, from PostgreSQL's text form of a numeric ("-12.34500000").
export function parseMoney(text) {
  const negative = text.startsWith('-');
  const [whole, fraction = ''] = (negative ? text.slice(1) : text).split('.');
  if (fraction.length > SCALE && /[^0]/.test(fraction.slice(SCALE))) {
    throw new RangeError(`more than ${SCALE} decimal places: ${text}`);
  }
  const units = BigInt(whole || '0') * UNIT + BigInt(fraction.slice(0, SCALE).padEnd(SCALE, '0'));
  return negative ? -units : units;
}

export function formatMoney(units) {
  const negative = units < 0n;
  const magnitude = negative ? -units : units;
  const whole = (magnitude / UNIT).toString();
  const fraction = (magnitude % UNIT).toString().padStart(SCALE, '0').replace(/0+$/, '');
  const text = fraction ? `${whole}.${fraction}` : whole;
  return negative && text !== '0' ? `-${text}` : text;
}

// A numeric column as the gateway shows it (null stays null).
export const money = (text) => (text == null ? null : formatMoney(parseMoney(text)));

const pad = (n, width = 2) => String(n).padStart(width, '0');

// A BSON date (millisecond precision) as Python prints it.
export function isoFromDate(date) {
  if (date == null) return null;
  const ms = date.getUTCMilliseconds();
  return (
    `${pad(date.getUTCFullYear(), 4)}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())}` +
    `T${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}` +
    (ms ? `.${pad(ms, 3)}000` : '') +
    '+00:00'
  );
}

// A timestamptz in PostgreSQL's text form, read in a session whose TimeZone is UTC
// ("2026-02-01 09:30:00.1234+00"), as Python prints it: node-postgres's own Date parsing
// would drop the microseconds.
export function isoFromPg(text) {
  if (text == null) return null;
  const match = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?\+00$/.exec(text);
  if (match === null) throw new RangeError(`not a UTC timestamp: ${text}`);
  const [, day, time, fraction] = match;
  const micros = fraction ? fraction.padEnd(6, '0') : '';
  return `${day}T${time}${micros && Number(micros) ? `.${micros}` : ''}+00:00`;
}

// A UTC calendar day, "YYYY-MM-DD", `offset` days from `day`.
export function addDays(day, offset) {
  const moment = new Date(`${day}T00:00:00Z`);
  moment.setUTCDate(moment.getUTCDate() + offset);
  return moment.toISOString().slice(0, 10);
}

export const todayUtc = () => new Date().toISOString().slice(0, 10);
