import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import {
  REDIS_ACCESS_ERROR_CODES,
  classifyRedisError,
  redisAccessFailure,
  watchRedisAccess,
} from './connectionErrors.js';

const reply = (message: string) => Object.assign(new Error(message), { name: 'ReplyError' });

describe('classifyRedisError', () => {
  it('maps WRONGPASS/NOAUTH, NOPERM and certificate failures; leaves the rest alone', () => {
    expect(
      classifyRedisError(reply('WRONGPASS invalid username-password pair or user is disabled.'))
        ?.code,
    ).toBe(REDIS_ACCESS_ERROR_CODES.AUTHENTICATION_FAILED);
    expect(classifyRedisError(reply('NOAUTH Authentication required.'))?.reason).toBe(
      'authentication',
    );
    expect(
      classifyRedisError(reply('NOPERM this user has no permissions to access one of the keys'))
        ?.code,
    ).toBe(REDIS_ACCESS_ERROR_CODES.NOT_AUTHORIZED);
    expect(
      classifyRedisError(
        Object.assign(new Error('altnames'), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' }),
      )?.reason,
    ).toBe('tls-hostname');
    expect(
      classifyRedisError(
        reply('WRONGTYPE Operation against a key holding the wrong kind of value'),
      ),
    ).toBeUndefined();
    expect(classifyRedisError(new Error('Connection is closed.'))).toBeUndefined();
  });
});

describe('watchRedisAccess', () => {
  it('remembers the last access failure of a client until it is ready again', () => {
    const client = Object.assign(new EventEmitter(), { status: 'reconnecting' });
    watchRedisAccess(client);
    watchRedisAccess(client); // idempotent: one listener
    expect(client.listenerCount('error')).toBe(1);
    client.emit(
      'error',
      Object.assign(new Error('self-signed'), { code: 'SELF_SIGNED_CERT_IN_CHAIN' }),
    );
    expect(redisAccessFailure(client)?.code).toBe(REDIS_ACCESS_ERROR_CODES.TLS_FAILED);
    client.emit('error', new Error('connect ECONNREFUSED'));
    expect(redisAccessFailure(client)?.code).toBe(REDIS_ACCESS_ERROR_CODES.TLS_FAILED);
    client.status = 'ready';
    client.emit('ready');
    expect(redisAccessFailure(client)).toBeUndefined();
  });

  it("absorbs a failed socket's second error (ioredis listens to the first only), so the process survives", () => {
    const stream = new EventEmitter();
    const client = Object.assign(new EventEmitter(), { status: 'connecting', stream });
    watchRedisAccess(client);
    // What ioredis does with its socket: the first error only, reported on the client.
    stream.once('error', (error) => client.emit('error', error));
    const handshake = Object.assign(new Error('certificate has expired'), {
      code: 'CERT_HAS_EXPIRED',
    });
    const alert = Object.assign(new Error('tlsv1 alert decode error'), {
      code: 'ERR_SSL_TLSV1_ALERT_DECODE_ERROR',
    });
    expect(() => stream.emit('error', handshake)).not.toThrow();
    expect(() => stream.emit('error', alert)).not.toThrow();
    expect(redisAccessFailure(client)?.code).toBe(REDIS_ACCESS_ERROR_CODES.TLS_FAILED);
  });
});
