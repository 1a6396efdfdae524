// Preload for a Node process that talks AMQP to port 5672 (session 12, rmq12; see
// examples/README.md "Session 12, rmq12"): counts the AMQP frames and bytes both ways by method,
// the local ports of its connections, and, when SNAP_AT="n1,n2" is set, takes a snapshot of the
// broker's reductions per process and per-connection socket counters (snap.sh) when the process
// has sent n1 and n2 basic.publish frames. Writes JSON to $FRAMECOUNT_OUT on exit; red.py and the
// cmp step there read it. A measuring tool, not part of the library.
//   FRAMECOUNT_OUT=/tmp/x.json SNAP_AT=10800,27000 node --import ./framecount.mjs --import tsx ...
// Preload: counts AMQP frames and bytes to/from port 5672, by method; dumps JSON on exit to $FRAMECOUNT_OUT
import net from 'node:net';
import fs from 'node:fs';
import { exec } from 'node:child_process';
const snapAt = (process.env.SNAP_AT ?? '').split(',').filter(Boolean).map(Number);
const stats = {
  ports: [],
  snaps: [],
  samples: [],
  out: {},
  in: {},
  bytesOut: 0,
  bytesIn: 0,
  headerBytesOut: 0,
  bodyBytesOut: 0,
  headerBytesIn: 0,
  bodyBytesIn: 0,
  sockets: 0,
  channelsOpened: 0,
  multipleAcks: 0,
  singleAcks: 0,
  ackedByMultiple: 0,
};
const names = {
  '10.10': 'conn.start',
  10.11: 'conn.start-ok',
  '10.30': 'conn.tune',
  10.31: 'conn.tune-ok',
  '10.40': 'conn.open',
  10.41: 'conn.open-ok',
  '10.50': 'conn.close',
  10.51: 'conn.close-ok',
  '20.10': 'ch.open',
  20.11: 'ch.open-ok',
  '20.20': 'ch.flow',
  '20.40': 'ch.close',
  20.41: 'ch.close-ok',
  '40.10': 'exchange.declare',
  40.11: 'exchange.declare-ok',
  '40.20': 'exchange.delete',
  40.21: 'exchange.delete-ok',
  '50.10': 'queue.declare',
  50.11: 'queue.declare-ok',
  '50.20': 'queue.bind',
  50.21: 'queue.bind-ok',
  '50.40': 'queue.delete',
  50.41: 'queue.delete-ok',
  '60.10': 'basic.qos',
  60.11: 'basic.qos-ok',
  '60.20': 'basic.consume',
  60.21: 'basic.consume-ok',
  '60.30': 'basic.cancel',
  60.31: 'basic.cancel-ok',
  '60.40': 'basic.publish',
  '60.50': 'basic.return',
  '60.60': 'basic.deliver',
  '60.80': 'basic.ack',
  '60.90': 'basic.reject',
  '60.120': 'basic.nack',
  '85.10': 'confirm.select',
  85.11: 'confirm.select-ok',
};
function inc(dir, k, n = 1) {
  stats[dir][k] = (stats[dir][k] ?? 0) + n;
}
function parser(dir) {
  let buf = Buffer.alloc(0);
  let started = dir === 'in';
  return (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    if (!started) {
      if (buf.length < 8) return;
      if (buf.slice(0, 4).toString() === 'AMQP') buf = buf.slice(8);
      started = true;
    }
    while (buf.length >= 7) {
      const type = buf[0],
        size = buf.readUInt32BE(3);
      if (buf.length < size + 8) break;
      const p = buf.slice(7, 7 + size);
      if (type === 1) {
        const k =
          names[`${p.readUInt16BE(0)}.${p.readUInt16BE(2)}`] ??
          `${p.readUInt16BE(0)}.${p.readUInt16BE(2)}`;
        inc(dir, k);
        if (k === 'basic.ack' && dir === 'out') {
          const multiple = p[12] & 1;
          if (multiple) stats.multipleAcks++;
          else stats.singleAcks++;
        }
        if (k === 'basic.ack' && dir === 'in') {
          const multiple = p[12] & 1;
          inc('in', multiple ? 'confirm.multiple' : 'confirm.single');
        }
        if (k === 'ch.open' && dir === 'out') stats.channelsOpened++;
        if (k === 'basic.publish' && dir === 'out' && snapAt.length && stats.out[k] === snapAt[0]) {
          snapAt.shift();
          const at = stats.out[k];
          exec(new URL('./snap.sh', import.meta.url).pathname, { maxBuffer: 1e8 }, (e, out) =>
            stats.snaps.push({ at, done: stats.out['basic.publish'], out }),
          );
        }
      } else if (type === 2) {
        if (dir === 'out' && stats.samples.length < 12)
          stats.samples.push(p.toString('latin1').replace(/[^\x20-\x7e]/g, '.'));
        if (dir === 'out') stats.headerBytesOut += size + 8;
        else stats.headerBytesIn += size + 8;
        inc(dir, 'frame.header');
      } else if (type === 3) {
        if (dir === 'out') stats.bodyBytesOut += size + 8;
        else stats.bodyBytesIn += size + 8;
        inc(dir, 'frame.body');
      } else if (type === 8) inc(dir, 'heartbeat');
      buf = buf.slice(size + 8);
    }
  };
}
const origConnect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  let opts = args[0];
  if (Array.isArray(opts)) opts = opts[0];
  const port = typeof opts === 'object' ? Number(opts.port) : Number(opts);
  const r = origConnect.apply(this, args);
  if (port === 5672 && !this.__fc) {
    this.__fc = true;
    stats.sockets++;
    this.once('connect', () => stats.ports.push(this.localPort));
    const po = parser('out'),
      pi = parser('in');
    const w = this.write;
    this.write = function (chunk, ...rest) {
      const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
      stats.bytesOut += b.length;
      po(b);
      return w.call(this, chunk, ...rest);
    };
    this.on('data', (b) => {
      stats.bytesIn += b.length;
      pi(b);
    });
  }
  return r;
};
process.on('exit', () => {
  fs.writeFileSync(
    process.env.FRAMECOUNT_OUT ?? `/tmp/framecount-${process.pid}.json`,
    JSON.stringify(stats, null, 1),
  );
});
