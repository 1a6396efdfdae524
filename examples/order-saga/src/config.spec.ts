import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, readConfig, readLoadConfig } from './config.js';

describe('example configuration', () => {
  const saved = process.env.BACKTRACK_TRANSPORT;
  afterEach(() => {
    if (saved === undefined) delete process.env.BACKTRACK_TRANSPORT;
    else process.env.BACKTRACK_TRANSPORT = saved;
  });

  it('defaults to the memory transport', () => {
    delete process.env.BACKTRACK_TRANSPORT;
    expect(readConfig([])).toMatchObject({ transport: 'memory', prefix: 'shop', orders: 20 });
  });

  it('takes the transport from the flag before the environment', () => {
    process.env.BACKTRACK_TRANSPORT = 'rabbitmq';
    expect(readConfig([]).transport).toBe('rabbitmq');
    expect(readConfig(['--transport', 'kafka']).transport).toBe('kafka');
  });

  it('takes the store from --store, then BACKTRACK_STORE, default "default"', () => {
    const savedStore = process.env.BACKTRACK_STORE;
    try {
      delete process.env.BACKTRACK_STORE;
      expect(readConfig([]).store).toBe('default');
      process.env.BACKTRACK_STORE = 'postgres';
      expect(readConfig([]).store).toBe('postgres');
      expect(readConfig(['--store', 'default']).store).toBe('default');
      expect(() => readConfig(['--store', 'mysql'])).toThrow(
        /--store must be one of default, postgres, got "mysql"/,
      );
    } finally {
      if (savedStore === undefined) delete process.env.BACKTRACK_STORE;
      else process.env.BACKTRACK_STORE = savedStore;
    }
  });

  it('rejects an unknown transport and a bad count with a message naming the flag', () => {
    expect(() => readConfig(['--transport', 'sqs'])).toThrow(ConfigError);
    expect(() => readConfig(['--transport', 'sqs'])).toThrow(
      /--transport must be one of memory, kafka, rabbitmq/,
    );
    expect(() => readConfig(['--orders', '0'])).toThrow(/--orders must be a positive integer/);
    expect(() => readConfig(['--nope'])).toThrow(/Unknown option '--nope'/);
  });

  it('reads the topology options and refuses ones that cannot work', () => {
    delete process.env.BACKTRACK_TRANSPORT;
    expect(readConfig([])).toMatchObject({
      partitions: 8,
      consumers: 1,
      prefetch: 256,
      lingerMs: 0,
    });
    expect(
      readConfig([
        '--partitions',
        '16',
        '--consumers',
        '4',
        '--prefetch',
        '128',
        '--linger-ms',
        '2',
      ]),
    ).toMatchObject({ partitions: 16, consumers: 4, prefetch: 128, lingerMs: 2 });
    expect(() => readConfig(['--partitions', '2', '--consumers', '3'])).toThrow(
      /--consumers \(3\) must not exceed --partitions \(2\)/,
    );
    // RabbitMQ has no partitions: competing consumers are not bounded by them.
    expect(
      readConfig(['--transport', 'rabbitmq', '--partitions', '2', '--consumers', '3']).consumers,
    ).toBe(3);
    expect(() => readConfig(['--partitions', '65'])).toThrow(/--partitions must be at most 64/);
    expect(() => readConfig(['--consumers', '0'])).toThrow(
      /--consumers must be a positive integer/,
    );
    expect(() => readConfig(['--linger-ms=-1'])).toThrow(/--linger-ms must be a number/);
  });

  it("reads the load driver's --processes, --layout and --warmup, and refuses what cannot run", () => {
    expect(readLoadConfig(['--transport', 'memory'])).toMatchObject({
      processes: 0,
      layout: 'per-service',
      warmup: 0,
      orders: 1_000,
    });
    expect(
      readLoadConfig(['--transport', 'rabbitmq', '--processes', '2', '--layout', 'shared']),
    ).toMatchObject({ processes: 2, layout: 'shared' });
    expect(readLoadConfig(['--transport', 'kafka', '--warmup', '500']).warmup).toBe(500);
    const refused = (argv: string[]) => () => readLoadConfig(argv);
    expect(refused(['--transport', 'memory', '--processes', '2'])).toThrow(/needs a broker/);
    expect(refused(['--transport', 'kafka', '--processes', '0'])).toThrow(ConfigError);
    expect(refused(['--transport', 'kafka', '--processes', '17'])).toThrow(/at most 16/);
    // Kafka: 3 × 3 members in a group of 8 partitions leaves one idle.
    expect(
      refused([
        '--transport',
        'kafka',
        '--processes',
        '3',
        '--consumers',
        '3',
        '--partitions',
        '8',
      ]),
    ).toThrow(/must not exceed --partitions/);
    expect(refused(['--transport', 'rabbitmq', '--processes', '1', '--layout', 'x'])).toThrow(
      /--layout must be one of per-service, shared/,
    );
    expect(refused(['--transport', 'kafka', '--warmup', '-1'])).toThrow(/--warmup/);
  });
});
