/**
 * RabbitMQ over amqps:// (a second, TLS-only node from scripts/secure/start) with a user allowed
 * on one vhost and on `secure.*` names only: publish and consume (with a client certificate),
 * certificate verification on by default, and refusals that fail fast with a coded error.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ConnectionAccessError } from '@backtrack/core';
import { RABBIT_ACCESS_ERROR_CODES, type RabbitTransport } from '@backtrack/rabbitmq';
import {
  RecordingProcessor,
  eventMessage,
  openTransport,
  uniqueName,
  waitFor,
} from '../../../packages/rabbitmq/test/support.js';
import { secureServices } from '../../support/secure.js';

const secure = await secureServices();

describe.skipIf(!secure.available)('RabbitMQ over amqps (vhost permissions)', () => {
  const transports: RabbitTransport[] = [];
  afterAll(async () => {
    await Promise.allSettled(transports.map((t) => t.close()));
  });

  async function expectDenied(
    run: () => Promise<unknown>,
    code: string,
    reason: string,
  ): Promise<ConnectionAccessError> {
    const started = Date.now();
    const error = await run().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConnectionAccessError);
    expect(error).toMatchObject({ code, retriable: false, service: 'rabbitmq', reason });
    // At the first refusal, not after the reconnect attempts.
    expect(Date.now() - started).toBeLessThan(5_000);
    return error as ConnectionAccessError;
  }

  it('publishes and consumes over amqps with a client certificate (mTLS)', async () => {
    const transport = await openTransport(secure.amqpsUrl(), {
      tls: { ca: [secure.pem('ca')], cert: secure.pem('clientCert'), key: secure.pem('clientKey') },
    });
    transports.push(transport);
    const exchange = uniqueName('secure.x');
    const processor = new RecordingProcessor();
    const sub = await transport.subscribe({
      topics: [exchange],
      group: uniqueName('secure.q'),
      processor,
    });
    await transport.publish(
      [0, 1, 2].map((i) => ({ topic: exchange, message: eventMessage('secure.test', { i }) })),
    );
    await waitFor('three messages', () => processor.seen.length >= 3, 30_000);
    expect(processor.seen).toHaveLength(3);
    await sub.close();
  });

  it('refuses a wrong password: BT_ERR_AMQP_AUTHENTICATION_FAILED, without reconnecting', async () => {
    const denied = await expectDenied(
      () => openTransport(secure.amqpsUrl('wrong-password'), { tls: { ca: [secure.pem('ca')] } }),
      RABBIT_ACCESS_ERROR_CODES.AUTHENTICATION_FAILED,
      'authentication',
    );
    expect(denied.message).not.toContain('wrong-password');
  });

  it('refuses a vhost the user has no permissions on', async () => {
    await expectDenied(
      () => openTransport(secure.amqpsUrl(undefined, '/'), { tls: { ca: [secure.pem('ca')] } }),
      RABBIT_ACCESS_ERROR_CODES.NOT_AUTHORIZED,
      'authorization',
    );
  });

  it('verifies the certificate by default: another CA fails with BT_ERR_AMQP_TLS_FAILED', async () => {
    await expectDenied(
      () => openTransport(secure.amqpsUrl(), { tls: { ca: [secure.pem('rogueCa')] } }),
      RABBIT_ACCESS_ERROR_CODES.TLS_FAILED,
      'tls-untrusted',
    );
  });

  it('fails with tls-rejected when the client certificate is from another CA', async () => {
    await expectDenied(
      () =>
        openTransport(secure.amqpsUrl(), {
          tls: {
            ca: [secure.pem('ca')],
            cert: secure.pem('rogueClientCert'),
            key: secure.pem('rogueClientKey'),
          },
        }),
      RABBIT_ACCESS_ERROR_CODES.TLS_FAILED,
      'tls-rejected',
    );
  });

  it('refuses a queue the user may not touch: BT_ERR_AMQP_NOT_AUTHORIZED naming it', async () => {
    const transport = await openTransport(secure.amqpsUrl(), { tls: { ca: [secure.pem('ca')] } });
    transports.push(transport);
    const group = uniqueName('forbidden.q');
    const denied = await expectDenied(
      () =>
        transport.subscribe({
          topics: [uniqueName('secure.x')],
          group,
          processor: new RecordingProcessor(),
        }),
      RABBIT_ACCESS_ERROR_CODES.NOT_AUTHORIZED,
      'authorization',
    );
    expect(denied.message).toContain(group);
  });
});
