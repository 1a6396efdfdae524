import { createHash } from 'node:crypto';
import type { ChainableCommander, Redis } from 'ioredis';
import type {
  InventoryState,
  Order,
  OrdersState,
  OrderStatus,
  Payment,
  PaymentsState,
  Reservation,
  ReserveOutcome,
  ServiceStates,
  Shipment,
  ShippingState,
  StateSnapshot,
} from './types.js';

/**
 * The services' state in Redis hashes, one hash (or three) per service under `prefix`. Writes
 * that read before they write run as Lua scripts, so two deliveries of one message handled at
 * once cannot both take stock or both refund.
 */

function parseAll<T>(hash: Record<string, string>): T[] {
  return Object.values(hash).map((v) => JSON.parse(v) as T);
}

/**
 * EVALSHA of a script, EVAL only when Redis does not know it yet (first use, a restart): the
 * script's body (hundreds of bytes) is not sent with every call.
 */
const scriptShas = new Map<string, string>();
async function runScript(
  redis: Redis,
  script: string,
  numKeys: number,
  ...args: (string | number)[]
): Promise<unknown> {
  let sha = scriptShas.get(script);
  if (sha === undefined) {
    sha = createHash('sha1').update(script).digest('hex');
    scriptShas.set(script, sha);
  }
  try {
    return await redis.evalsha(sha, numKeys, ...args);
  } catch (error) {
    if (!String((error as Error).message).startsWith('NOSCRIPT')) throw error;
    return redis.eval(script, numKeys, ...args);
  }
}

const SET_STATUS = `
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return false end
local o = cjson.decode(raw)
o.status = ARGV[2]
if ARGV[3] == '1' then o.reason = ARGV[4] else o.reason = nil end
local out = cjson.encode(o)
redis.call('HSET', KEYS[1], ARGV[1], out)
return out
`;

/** Orders in the hash `<prefix>:orders`, one JSON field per order. */
export class RedisOrdersState implements OrdersState {
  readonly #redis: Redis;
  readonly #key: string;

  constructor(redis: Redis, prefix: string) {
    this.#redis = redis;
    this.#key = `${prefix}:orders`;
  }

  async create(order: Omit<Order, 'status'>): Promise<Order> {
    const created: Order = { ...order, status: 'pending' };
    const set = await this.#redis.hsetnx(this.#key, order.orderId, JSON.stringify(created));
    if (set === 1) return created;
    return (await this.get(order.orderId))!;
  }

  async setStatus(
    orderId: string,
    status: OrderStatus,
    reason?: string,
  ): Promise<Order | undefined> {
    // One script (read, change, write, return) instead of HGET, HSET and the caller's HGET.
    const raw = (await runScript(
      this.#redis,
      SET_STATUS,
      1,
      this.#key,
      orderId,
      status,
      reason === undefined ? '0' : '1',
      reason ?? '',
    )) as string | null;
    return raw === null ? undefined : (JSON.parse(raw) as Order);
  }

  async get(orderId: string): Promise<Order | undefined> {
    const raw = await this.#redis.hget(this.#key, orderId);
    return raw === null ? undefined : (JSON.parse(raw) as Order);
  }

  async all(): Promise<Order[]> {
    return parseAll<Order>(await this.#redis.hgetall(this.#key));
  }
}

const RESERVE = `
local existing = redis.call('HGET', KEYS[2], ARGV[1])
if existing then return {'existing', existing, redis.call('HGET', KEYS[1], ARGV[2]) or '0'} end
local available = tonumber(redis.call('HGET', KEYS[1], ARGV[2]) or '0')
local qty = tonumber(ARGV[3])
if available < qty then return {'rejected', '', tostring(available)} end
redis.call('HINCRBY', KEYS[1], ARGV[2], -qty)
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
return {'reserved', ARGV[4], tostring(available - qty)}
`;

const RELEASE = `
local raw = redis.call('HGET', KEYS[2], ARGV[1])
if not raw then
  redis.call('HSET', KEYS[2], ARGV[1], cjson.encode({orderId=ARGV[1], sku='', qty=0, status='released'}))
  return {0, ''}
end
local r = cjson.decode(raw)
if r.status == 'released' then return {0, r.sku} end
redis.call('HINCRBY', KEYS[1], r.sku, r.qty)
r.status = 'released'
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(r))
return {r.qty, r.sku}
`;

const COMMIT = `
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local r = cjson.decode(raw)
if r.status ~= 'reserved' then return 0 end
r.status = 'committed'
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(r))
return 1
`;

/** Stock in `<prefix>:inventory:available` / `:initial`, reservations in `:reservations`. */
export class RedisInventoryState implements InventoryState {
  readonly #redis: Redis;
  readonly #available: string;
  readonly #initial: string;
  readonly #reservations: string;

  constructor(redis: Redis, prefix: string) {
    this.#redis = redis;
    this.#available = `${prefix}:inventory:available`;
    this.#initial = `${prefix}:inventory:initial`;
    this.#reservations = `${prefix}:inventory:reservations`;
  }

  async setStock(sku: string, qty: number): Promise<void> {
    await this.#redis.multi().hset(this.#available, sku, qty).hset(this.#initial, sku, qty).exec();
  }

  async reserve(orderId: string, sku: string, qty: number): Promise<ReserveOutcome> {
    const reservation: Reservation = { orderId, sku, qty, status: 'reserved' };
    const [outcome, raw, available] = (await runScript(
      this.#redis,
      RESERVE,
      2,
      this.#available,
      this.#reservations,
      orderId,
      sku,
      String(qty),
      JSON.stringify(reservation),
    )) as [string, string, string];
    if (outcome === 'rejected')
      return { ok: false, reason: 'out-of-stock', available: Number(available) };
    const stored = JSON.parse(raw) as Reservation;
    if (stored.status === 'released') {
      return { ok: false, reason: 'already-released', available: Number(available) };
    }
    return { ok: true, reservation: stored, duplicate: outcome === 'existing' };
  }

  async release(orderId: string): Promise<{ released: number; sku: string }> {
    const [released, sku] = (await runScript(
      this.#redis,
      RELEASE,
      2,
      this.#available,
      this.#reservations,
      orderId,
    )) as [number, string];
    return { released: Number(released), sku };
  }

  async commit(orderId: string): Promise<boolean> {
    return (await runScript(this.#redis, COMMIT, 1, this.#reservations, orderId)) === 1;
  }

  async available(): Promise<Record<string, number>> {
    return numbers(await this.#redis.hgetall(this.#available));
  }

  async initial(): Promise<Record<string, number>> {
    return numbers(await this.#redis.hgetall(this.#initial));
  }

  async reservations(): Promise<Reservation[]> {
    return parseAll<Reservation>(await this.#redis.hgetall(this.#reservations));
  }
}

function numbers(hash: Record<string, string>): Record<string, number> {
  return Object.fromEntries(Object.entries(hash).map(([k, v]) => [k, Number(v)]));
}

const REFUND = `
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then
  local voided = cjson.encode({orderId=ARGV[1], chargeId='', status='voided', requestedCents=0,
    chargedCents=0, refundedCents=0, version='', reason='refund before charge'})
  redis.call('HSET', KEYS[1], ARGV[1], voided)
  return {voided, 0}
end
local p = cjson.decode(raw)
local remaining = 0
if p.status == 'charged' then remaining = p.chargedCents - p.refundedCents end
local now = remaining
if ARGV[2] ~= '' then now = math.min(remaining, tonumber(ARGV[2])) end
if now < 0 then now = 0 end
if now == 0 then return {raw, 0} end
p.refundedCents = p.refundedCents + now
local out = cjson.encode(p)
redis.call('HSET', KEYS[1], ARGV[1], out)
return {out, now}
`;

/** Payments in the hash `<prefix>:payments`, one JSON field per order. */
export class RedisPaymentsState implements PaymentsState {
  readonly #redis: Redis;
  readonly #key: string;

  constructor(redis: Redis, prefix: string) {
    this.#redis = redis;
    this.#key = `${prefix}:payments`;
  }

  async charge(
    payment: Omit<Payment, 'refundedCents'>,
  ): Promise<{ payment: Payment; duplicate: boolean }> {
    const created: Payment = { ...payment, refundedCents: 0 };
    const set = await this.#redis.hsetnx(this.#key, payment.orderId, JSON.stringify(created));
    if (set === 1) return { payment: created, duplicate: false };
    return { payment: (await this.get(payment.orderId))!, duplicate: true };
  }

  async refund(
    orderId: string,
    amountCents?: number,
  ): Promise<{ payment: Payment; refundedNow: number }> {
    const [raw, now] = (await runScript(
      this.#redis,
      REFUND,
      1,
      this.#key,
      orderId,
      amountCents === undefined ? '' : String(amountCents),
    )) as [string, number];
    return { payment: JSON.parse(raw) as Payment, refundedNow: Number(now) };
  }

  async get(orderId: string): Promise<Payment | undefined> {
    const raw = await this.#redis.hget(this.#key, orderId);
    return raw === null ? undefined : (JSON.parse(raw) as Payment);
  }

  async all(): Promise<Payment[]> {
    return parseAll<Payment>(await this.#redis.hgetall(this.#key));
  }
}

/** Shipments in the hash `<prefix>:shipments`. */
export class RedisShippingState implements ShippingState {
  readonly #redis: Redis;
  readonly #key: string;

  constructor(redis: Redis, prefix: string) {
    this.#redis = redis;
    this.#key = `${prefix}:shipments`;
  }

  async ship(shipment: Shipment): Promise<{ shipment: Shipment; duplicate: boolean }> {
    const set = await this.#redis.hsetnx(this.#key, shipment.orderId, JSON.stringify(shipment));
    if (set === 1) return { shipment, duplicate: false };
    const raw = (await this.#redis.hget(this.#key, shipment.orderId))!;
    return { shipment: JSON.parse(raw) as Shipment, duplicate: true };
  }

  async all(): Promise<Shipment[]> {
    return parseAll<Shipment>(await this.#redis.hgetall(this.#key));
  }
}

/** The four stores on one Redis connection, under `prefix` (for example `shop` or a test's unique name). */
export function createRedisStates(redis: Redis, prefix: string): ServiceStates {
  return {
    orders: new RedisOrdersState(redis, prefix),
    inventory: new RedisInventoryState(redis, prefix),
    payments: new RedisPaymentsState(redis, prefix),
    shipping: new RedisShippingState(redis, prefix),
    snapshot: () => redisSnapshot(redis, prefix),
    snapshotOf: (orderIds) => redisSnapshotOf(redis, prefix, orderIds),
  };
}

/** Runs a MULTI and returns each command's value (the first command's error is thrown). */
async function valuesOf(multi: ChainableCommander): Promise<unknown[]> {
  const results = await multi.exec();
  if (results === null) throw new Error('redis snapshot: MULTI was aborted');
  return results.map(([error, value]) => {
    if (error) throw error;
    return value;
  });
}

/**
 * The checker's read: the six hashes in one MULTI/EXEC, so one round trip whatever the number
 * of orders, and no service writes between two of the reads (a cut the services agree on).
 */
export async function redisSnapshot(redis: Redis, prefix: string): Promise<StateSnapshot> {
  const hashes = await valuesOf(
    redis
      .multi()
      .hgetall(`${prefix}:orders`)
      .hgetall(`${prefix}:inventory:reservations`)
      .hgetall(`${prefix}:payments`)
      .hgetall(`${prefix}:shipments`)
      .hgetall(`${prefix}:inventory:available`)
      .hgetall(`${prefix}:inventory:initial`),
  );
  const [orders, reservations, payments, shipments, available, initial] = hashes as [
    Record<string, string>,
    Record<string, string>,
    Record<string, string>,
    Record<string, string>,
    Record<string, string>,
    Record<string, string>,
  ];
  return {
    orders: parseAll<Order>(orders),
    reservations: parseAll<Reservation>(reservations),
    payments: parseAll<Payment>(payments),
    shipments: parseAll<Shipment>(shipments),
    available: numbers(available),
    initial: numbers(initial),
  };
}

/**
 * The checker's read of some orders: one MULTI of four HMGETs (the orders, reservations,
 * payments and shipments of `orderIds`) and the two stock hashes, so one round trip whatever
 * the number of ids, and a cut the services agree on.
 */
export async function redisSnapshotOf(
  redis: Redis,
  prefix: string,
  orderIds: readonly string[],
): Promise<StateSnapshot> {
  if (orderIds.length === 0) {
    const [available, initial] = await Promise.all([
      redis.hgetall(`${prefix}:inventory:available`),
      redis.hgetall(`${prefix}:inventory:initial`),
    ]);
    return {
      orders: [],
      reservations: [],
      payments: [],
      shipments: [],
      available: numbers(available),
      initial: numbers(initial),
    };
  }
  const ids = [...orderIds];
  const values = await valuesOf(
    redis
      .multi()
      .hmget(`${prefix}:orders`, ...ids)
      .hmget(`${prefix}:inventory:reservations`, ...ids)
      .hmget(`${prefix}:payments`, ...ids)
      .hmget(`${prefix}:shipments`, ...ids)
      .hgetall(`${prefix}:inventory:available`)
      .hgetall(`${prefix}:inventory:initial`),
  );
  const present = <T>(list: unknown): T[] =>
    (list as (string | null)[]).flatMap((v) => (v === null ? [] : [JSON.parse(v) as T]));
  return {
    orders: present<Order>(values[0]),
    reservations: present<Reservation>(values[1]),
    payments: present<Payment>(values[2]),
    shipments: present<Shipment>(values[3]),
    available: numbers(values[4] as Record<string, string>),
    initial: numbers(values[5] as Record<string, string>),
  };
}
