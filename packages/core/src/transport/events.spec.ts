import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { TransportEventEmitter } from './events.js';

describe('TransportEventEmitter', () => {
  it('calls the listeners of an event with the transport and time, until removed', () => {
    const emitter = new TransportEventEmitter('test', pino({ level: 'silent' }), () => 42);
    const seen: unknown[] = [];
    const off = emitter.on('connection.blocked', (e) => seen.push(e));
    emitter.on('connection.unblocked', () => seen.push('unblocked'));
    expect(emitter.listens('connection.blocked')).toBe(true);
    expect(emitter.listens('consumer.crashed')).toBe(false);
    emitter.emit('connection.blocked', { reason: 'low on memory' });
    emitter.emit('connection.unblocked', {});
    off();
    emitter.emit('connection.blocked', { reason: 'again' });
    expect(seen).toEqual([{ transport: 'test', at: 42, reason: 'low on memory' }, 'unblocked']);
  });

  it('a listener that throws is logged; the others still run and emit does not throw', () => {
    const errors: unknown[] = [];
    const logger = pino(
      { level: 'error' },
      { write: (line: string) => void errors.push(JSON.parse(line)) },
    );
    const emitter = new TransportEventEmitter('test', logger);
    const seen: string[] = [];
    emitter.on('connection.unblocked', () => {
      throw new Error('listener bug');
    });
    emitter.on('connection.unblocked', () => void seen.push('second'));
    expect(() => emitter.emit('connection.unblocked', {})).not.toThrow();
    expect(seen).toEqual(['second']);
    expect(errors).toEqual([expect.objectContaining({ msg: 'transport event listener threw' })]);
  });
});
