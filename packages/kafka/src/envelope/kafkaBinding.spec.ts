import { describe, expect, it } from 'vitest';
import { createEnvelope, decodeEnvelope, encodeEnvelope } from '@backtrack/core';
import {
  fromKafkaRecord,
  headerToPositiveInt,
  headerToString,
  toKafkaHeaders,
  toKafkaRecord,
} from './kafkaBinding.js';
import { readDeadLetter } from './deadLetter.js';

const headers = {
  id: 'e-1',
  source: '//shop',
  type: 'order.placed',
  specversion: '1.0',
  time: '2026-01-01T00:00:00.000Z',
  schemaversion: '2',
  sagaid: 'saga-1',
  'content-type': 'application/json',
};
const body = new TextEncoder().encode('{"orderId":"o-1"}');

describe('CloudEvents Kafka binding', () => {
  it('prefixes every attribute with ce_ and keeps content-type as it is', () => {
    expect(toKafkaHeaders(headers)).toEqual({
      ce_id: 'e-1',
      ce_source: '//shop',
      ce_type: 'order.placed',
      ce_specversion: '1.0',
      ce_time: '2026-01-01T00:00:00.000Z',
      ce_schemaversion: '2',
      ce_sagaid: 'saga-1',
      'content-type': 'application/json',
    });
  });

  it('keys by the explicit key, else partitionkey, else sagaid, else none', () => {
    expect(toKafkaRecord({ headers, body }, 'k').key).toBe('k');
    expect(toKafkaRecord({ headers: { ...headers, partitionkey: 'p' }, body }).key).toBe('p');
    expect(toKafkaRecord({ headers, body }).key).toBe('saga-1');
    const { sagaid: _, ...noSaga } = headers;
    expect(toKafkaRecord({ headers: noSaga, body }).key).toBeNull();
  });

  it('round-trips headers and bytes', () => {
    const record = toKafkaRecord({ headers, body });
    const back = fromKafkaRecord({
      headers: record.headers as Record<string, string>,
      value: record.value,
    });
    expect(back.headers).toEqual(headers);
    expect(Buffer.from(back.body).toString()).toBe('{"orderId":"o-1"}');
  });

  it('reads Buffers, arrays (last wins) and mixed case; drops non-CloudEvents headers; a tombstone has an empty body', () => {
    const back = fromKafkaRecord({
      headers: {
        CE_ID: Buffer.from('e-2'),
        ce_type: [Buffer.from('old'), 'new'],
        'Content-Type': 'application/json',
        traceparent: 'x',
        'x-backtrack-attempt': '3',
        ce_: 'empty name',
        ce_gone: undefined,
      },
      value: null,
    });
    expect(back.headers).toEqual({ id: 'e-2', type: 'new', 'content-type': 'application/json' });
    expect(back.body.byteLength).toBe(0);
  });

  it('parses header values defensively', () => {
    expect(headerToString(undefined)).toBeUndefined();
    expect(headerToString([])).toBeUndefined();
    expect(headerToPositiveInt('3')).toBe(3);
    expect(headerToPositiveInt('0')).toBeUndefined();
    expect(headerToPositiveInt('-1')).toBeUndefined();
    expect(headerToPositiveInt('1e3')).toBeUndefined();
  });

  it('reads a dead-letter record, with defaults for missing Backtrack headers', () => {
    const dl = readDeadLetter(
      {
        offset: '7',
        key: Buffer.from('k'),
        value: Buffer.from(body),
        timestamp: '0',
        headers: {
          ...toKafkaHeaders(headers),
          'x-backtrack-reason': 'bad',
          'x-backtrack-dead-letter-code': 'BT_ERR_SCHEMA_VALIDATION',
          'x-backtrack-original-topic': 'orders',
          'x-backtrack-original-partition': '2',
          'x-backtrack-original-offset': '41',
          'x-backtrack-attempt': '1',
        },
      },
      0,
    );
    expect(dl).toMatchObject({
      key: 'k',
      reason: 'bad',
      code: 'BT_ERR_SCHEMA_VALIDATION',
      originalTopic: 'orders',
      originalPartition: 2,
      originalOffset: '41',
      attempt: 1,
      partition: 0,
      offset: '7',
    });
    expect(dl.message.headers).toEqual(headers);
    const bare = readDeadLetter(
      { offset: '0', key: null, value: null, timestamp: '0', headers: {} },
      1,
    );
    expect(bare).toMatchObject({ key: null, reason: 'unknown', code: 'unknown', attempt: 1 });
  });

  it('treats a header without a value (kafkajs: null) as absent', () => {
    expect(headerToString(null)).toBeUndefined();
    expect(headerToString([Buffer.from('a'), null as unknown as Buffer])).toBeUndefined();
    expect(headerToPositiveInt(null)).toBeUndefined();
    const back = fromKafkaRecord({
      headers: { ce_id: 'e', ce_subject: null, ce___proto__: 'x' },
      value: Buffer.from('{}'),
    });
    expect(back.headers).toEqual({ id: 'e' });
    expect(Object.getPrototypeOf(back.headers)).toBe(Object.prototype);
  });

  it('publishes structured mode on request: only content-type as a header, the JSON event as the value', () => {
    const message = encodeEnvelope(
      createEnvelope({
        type: 'order.placed',
        source: '//shop',
        schemaversion: 2,
        data: { orderId: 'o-1' },
        partitionkey: 'o-1',
        subject: 'order/o-1',
        extensions: { tenantid: 'acme' },
      }),
    );
    const record = toKafkaRecord(message, undefined, 'structured');
    expect(record.headers).toEqual({
      'content-type': 'application/cloudevents+json; charset=utf-8',
    });
    expect(record.key).toBe('o-1');
    const event = JSON.parse(String(record.value)) as Record<string, unknown>;
    expect(event).toMatchObject({
      specversion: '1.0',
      type: 'order.placed',
      subject: 'order/o-1',
      tenantid: 'acme',
      schemaversion: 2,
      partitionkey: 'o-1',
      data: { orderId: 'o-1' },
    });
    const back = decodeEnvelope(
      fromKafkaRecord({ headers: record.headers as Record<string, string>, value: record.value }),
    );
    expect(back).toEqual(decodeEnvelope(message));
  });
});
