import { describe, expect, it } from 'vitest';
import { BacktrackError } from './BacktrackError.js';
import { ConnectionAccessError, accessErrorOf, tlsFailureOf } from './ConnectionAccessError.js';

const withCode = (code: string, message = code) => Object.assign(new Error(message), { code });

describe('tlsFailureOf', () => {
  it.each([
    ['SELF_SIGNED_CERT_IN_CHAIN', 'tls-untrusted'],
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'tls-untrusted'],
    ['CERT_HAS_EXPIRED', 'tls-expired'],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 'tls-hostname'],
    ['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'tls-rejected'],
  ])('maps %s to %s, also when wrapped as a cause or originalError', (code, reason) => {
    expect(tlsFailureOf(withCode(code))).toMatchObject({ reason, tlsCode: code });
    expect(tlsFailureOf(new Error('outer', { cause: withCode(code) }))?.reason).toBe(reason);
    expect(
      tlsFailureOf(Object.assign(new Error('kafkajs'), { originalError: withCode(code) }))?.reason,
    ).toBe(reason);
  });

  it('leaves outages alone', () => {
    expect(tlsFailureOf(withCode('ECONNREFUSED'))).toBeUndefined();
    expect(tlsFailureOf(new Error('Connection is closed.'))).toBeUndefined();
    expect(tlsFailureOf(undefined)).toBeUndefined();
  });
});

describe('ConnectionAccessError', () => {
  it('is a non-retriable BacktrackError with the service and reason in details', () => {
    const e = new ConnectionAccessError('BT_ERR_X_NOT_AUTHORIZED', 'x', 'authorization', 'x: no');
    expect(e).toBeInstanceOf(BacktrackError);
    expect(e).toMatchObject({ retriable: false, service: 'x', reason: 'authorization' });
    expect(e.details).toMatchObject({ service: 'x', reason: 'authorization' });
  });

  it('is found in a chain of causes', () => {
    const e = new ConnectionAccessError('BT_ERR_X_TLS_FAILED', 'x', 'tls-untrusted', 'x: tls');
    expect(accessErrorOf(new Error('wrapped', { cause: e }))).toBe(e);
    expect(accessErrorOf(new Error('plain'))).toBeUndefined();
  });
});
