import { afterEach, describe, expect, it, vi } from 'vitest';
import { BacktrackError } from '../errors/BacktrackError.js';
import { createDefaultLogger } from './logger.js';
import { REDACTED, redactError, redactSecrets, redactText } from './redact.js';

const PEM =
  '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----';

describe('redactText', () => {
  it.each([
    ['redis://bob:s3cret@h:6379/0', 'redis://bob:***@h:6379/0'],
    ['rediss://:s3cret@h:6380', 'rediss://:***@h:6380'],
    ['amqps://app:s3/cr@et@h/vhost and more', 'amqps://app:***@h/vhost and more'],
    [
      'at "postgres://u:s3cret@db/app?sslmode=verify-full"',
      'at "postgres://u:***@db/app?sslmode=verify-full"',
    ],
    ['redis://h:6379?password=s3cret&db=1', 'redis://h:6379?password=[redacted]&db=1'],
    [
      "host=db user=u password='s 3cret' sslmode=require",
      'host=db user=u password=[redacted] sslmode=require',
    ],
    ['{"password":"s3\\"cret","user":"u"}', '{"password":"[redacted]","user":"u"}'],
    [`key: ${PEM} end`, `key: ${REDACTED} end`],
    [
      '{"command":{"name":"hello","args":["3","AUTH","u","s3cret"]}}',
      `{"command":{"name":"hello","args":["${REDACTED}"]}}`,
    ],
  ])('%s', (input, expected) => {
    expect(redactText(input)).toBe(expected);
    expect(redactText(input)).not.toContain('s3');
  });

  it('leaves text without secrets as it is', () => {
    for (const text of [
      'redis://127.0.0.1:6379',
      'redis://user@h',
      'a=b c',
      'plain',
      'https://registry.example/pkg/@scope:name@1.0.0',
      'at file:///app/node_modules/@backtrack/core/dist/x.js:10:5',
    ]) {
      expect(redactText(text)).toBe(text);
    }
  });
});

describe('redactSecrets', () => {
  it('hides secret fields, TLS keys and SASL settings at any depth, keeps the rest', () => {
    const key = Buffer.from('k');
    const input = {
      brokers: ['b:9093'],
      ssl: { ca: 'CA', key, passphrase: 'pp', rejectUnauthorized: true },
      sasl: { mechanism: 'scram-sha-512', username: 'app', password: 'pw' },
      nested: [{ url: 'amqp://u:pw@h', token: 'lease-1', key: 'order-1' }],
      field: 'sasl.password',
      value: 'pw',
    };
    const out = redactSecrets(input);
    expect(out).toEqual({
      brokers: ['b:9093'],
      ssl: { ca: 'CA', key: REDACTED, passphrase: REDACTED, rejectUnauthorized: true },
      sasl: { mechanism: 'scram-sha-512', username: 'app', password: REDACTED },
      nested: [{ url: 'amqp://u:***@h', token: 'lease-1', key: 'order-1' }],
      field: 'sasl.password',
      value: REDACTED,
    });
    expect(input.sasl.password).toBe('pw'); // a copy, the input is untouched
  });

  it('returns the same object when there is nothing to hide', () => {
    const input = { a: 1, b: ['x'], c: { d: 'redis://h:6379' } };
    expect(redactSecrets(input)).toBe(input);
  });

  it('survives cycles, and never hands the original back through one', () => {
    const input: Record<string, unknown> = { password: 'pw' };
    input.self = input;
    const out = redactSecrets(input) as Record<string, unknown>;
    expect(out.password).toBe(REDACTED);
    expect(out.self).toBe('[Circular]');
    expect(JSON.stringify(out)).not.toContain('"pw"');
  });

  it('redacts an object reached twice both times (a step result in a record and a timeline)', () => {
    const result = { apiKey: 'sk-1', note: 'see redis://:pw-2@h:6379' };
    const out = redactSecrets({ record: { result }, timeline: [{ result }] });
    expect(JSON.stringify(out)).not.toMatch(/sk-1|pw-2/);
    expect(out.timeline[0]!.result).toEqual({ apiKey: REDACTED, note: 'see redis://:***@h:6379' });
    expect(result.apiKey).toBe('sk-1'); // the input is untouched
  });

  it('replaces what is deeper than it walks instead of passing it through', () => {
    let deep: Record<string, unknown> = { password: 'deep-pw' };
    for (let i = 0; i < 40; i++) deep = { next: deep };
    expect(JSON.stringify(redactSecrets(deep))).not.toContain('deep-pw');
  });
});

describe('redactError', () => {
  it('scrubs message, stack, own fields and the cause chain in place', () => {
    const reply = Object.assign(new Error('WRONGPASS'), {
      command: { name: 'auth', args: ['u', 'pw-secret'] },
    });
    const outer = new Error('cannot reach redis://u:pw-secret@h', { cause: reply });
    const same = redactError(outer);
    expect(same).toBe(outer);
    const text = `${outer.message} ${outer.stack} ${JSON.stringify(reply)} ${reply.stack}`;
    expect(text).not.toContain('pw-secret');
    expect(reply.command.name).toBe('auth');
  });

  it('runs for every BacktrackError: message, details and cause', () => {
    const cause = Object.assign(new Error('refused amqps://app:pw-secret@h'), {
      url: 'amqps://app:pw-secret@h',
    });
    const error = new BacktrackError('BT_ERR_TEST', 'connect amqps://app:pw-secret@h failed', {
      details: {
        url: 'amqps://app:pw-secret@h',
        sasl: { mechanism: 'plain', password: 'pw-secret' },
      },
      cause,
    });
    const everything = [
      error.message,
      error.stack,
      JSON.stringify(error),
      JSON.stringify(error.details),
      String((error.cause as Error).message),
      (error.cause as Error).stack,
      JSON.stringify(error.cause),
    ].join('\n');
    expect(everything).not.toContain('pw-secret');
    expect(error.message).toBe('connect amqps://app:***@h failed');
  });
});

describe('the default logger', () => {
  const saved = process.env.BACKTRACK_LOG_LEVEL;
  afterEach(() => {
    if (saved === undefined) delete process.env.BACKTRACK_LOG_LEVEL;
    else process.env.BACKTRACK_LOG_LEVEL = saved;
    vi.restoreAllMocks();
  });

  it.each(['warn', 'debug'])('writes no secret at level %s', (level) => {
    process.env.BACKTRACK_LOG_LEVEL = level;
    const lines: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    });
    const err = Object.assign(new Error('no auth for redis://u:pw-secret@h'), {
      command: { name: 'hello', args: ['3', 'AUTH', 'u', 'pw-secret'] },
    });
    const logger = createDefaultLogger().child({ url: 'postgres://u:pw-secret@db/app' });
    logger.warn(
      {
        err,
        conn: { tls: { ssl: { key: Buffer.from('pw-secret') } } },
        options: { password: 'pw-secret' },
      },
      'x %s',
      'amqp://u:pw-secret@h',
    );
    expect(lines.join('')).toContain('[redacted]');
    expect(lines.join('')).not.toContain('pw-secret');
    expect(lines.join('')).not.toContain(
      JSON.stringify([...Buffer.from('pw-secret')]).slice(1, -1),
    );
  });
});
