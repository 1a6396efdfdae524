import { describe, expect, it } from 'vitest';
import { RABBIT_ACCESS_ERROR_CODES, classifyRabbitError } from './connectionErrors.js';

// Messages amqplib gives, as seen against a TLS RabbitMQ 3.10 node with vhost permissions.
describe('classifyRabbitError', () => {
  it('maps a refused login to AUTHENTICATION_FAILED', () => {
    const e = new Error(
      'Handshake terminated by server: 403 (ACCESS-REFUSED) with message "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN."',
    );
    expect(classifyRabbitError(e)).toMatchObject({
      code: RABBIT_ACCESS_ERROR_CODES.AUTHENTICATION_FAILED,
      service: 'rabbitmq',
    });
  });

  it('maps a refused vhost and a refused queue to NOT_AUTHORIZED, naming the queue', () => {
    expect(
      classifyRabbitError(new Error('Expected ConnectionOpenOk; got <ConnectionClose channel:0>')),
    ).toMatchObject({
      code: RABBIT_ACCESS_ERROR_CODES.NOT_AUTHORIZED,
      details: { resource: 'vhost' },
    });
    const queue = Object.assign(
      new Error(
        `Operation failed: QueueDeclare; 403 (ACCESS-REFUSED) with message "ACCESS_REFUSED - access to queue 'other.q' in vhost 'v' refused for user 'bt'"`,
      ),
      { code: 403 },
    );
    const e = classifyRabbitError(queue);
    expect(e).toMatchObject({ details: { resource: 'queue', name: 'other.q', vhost: 'v' } });
    expect(e?.message).toContain("queue 'other.q'");
  });

  it('maps certificate failures to TLS_FAILED and leaves outages alone', () => {
    const tls = Object.assign(new Error('self-signed certificate in certificate chain'), {
      code: 'SELF_SIGNED_CERT_IN_CHAIN',
    });
    expect(classifyRabbitError(tls)).toMatchObject({
      code: RABBIT_ACCESS_ERROR_CODES.TLS_FAILED,
      reason: 'tls-untrusted',
    });
    expect(
      classifyRabbitError(
        Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
      ),
    ).toBeUndefined();
    expect(
      classifyRabbitError(new Error('Channel closed by server: 404 (NOT-FOUND)')),
    ).toBeUndefined();
  });
});
