import { describe, expect, it } from 'vitest';
import { StoreUnavailableError } from '@backtrack/core';
import { POSTGRES_ACCESS_ERROR_CODES, classifyPostgresError } from './connectionErrors.js';
import { toStoreError } from './errors.js';

const pgError = (code: string, message = code) => Object.assign(new Error(message), { code });

describe('classifyPostgresError', () => {
  it('maps 28P01/28000 to AUTHENTICATION_FAILED and 42501 to NOT_AUTHORIZED', () => {
    expect(classifyPostgresError(pgError('28P01'))?.code).toBe(
      POSTGRES_ACCESS_ERROR_CODES.AUTHENTICATION_FAILED,
    );
    expect(classifyPostgresError(pgError('28000'))?.reason).toBe('authentication');
    expect(classifyPostgresError(pgError('42501'))?.code).toBe(
      POSTGRES_ACCESS_ERROR_CODES.NOT_AUTHORIZED,
    );
    expect(classifyPostgresError(pgError('SELF_SIGNED_CERT_IN_CHAIN'))?.code).toBe(
      POSTGRES_ACCESS_ERROR_CODES.TLS_FAILED,
    );
    expect(classifyPostgresError(pgError('40001'))).toBeUndefined();
  });

  it('makes toStoreError return the access error, not a retriable StoreUnavailableError', () => {
    const e = toStoreError(
      pgError('28P01', 'password authentication failed for user "app"'),
      's',
      'claim',
    );
    expect(e).not.toBeInstanceOf(StoreUnavailableError);
    expect(e).toMatchObject({
      code: POSTGRES_ACCESS_ERROR_CODES.AUTHENTICATION_FAILED,
      retriable: false,
    });
    expect(toStoreError(pgError('ECONNREFUSED'), 's', 'claim')).toBeInstanceOf(
      StoreUnavailableError,
    );
  });
});
