import { describe, expect, it } from 'vitest';
import { ConfigError } from '../errors/ConfigError.js';
import { InMemorySagaStore } from './InMemorySagaStore.js';
import { SagaEngine, createSagaEngine } from './SagaEngine.js';
import { SagaDefinitionError, SagaEngineConfigError } from './errors.js';

describe('saga engine options', () => {
  it('takes options and collaborators in one object, every option defaulted', async () => {
    const engine = createSagaEngine({ store: new InMemorySagaStore(), ownerId: 'one-object' });
    expect(engine.ownerId).toBe('one-object');
    expect(await engine.recover()).toMatchObject({ found: 0, results: [] });
  });

  it('throws SagaEngineConfigError (not SagaDefinitionError) for a bad option, naming it', () => {
    const store = new InMemorySagaStore();
    const error = (() => {
      try {
        createSagaEngine({ store, leaseMs: 0 });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(SagaEngineConfigError);
    expect(error).toBeInstanceOf(ConfigError);
    expect(error).not.toBeInstanceOf(SagaDefinitionError);
    expect(error).toMatchObject({
      code: 'BT_ERR_SAGA_ENGINE_CONFIG_INVALID',
      retriable: false,
      details: { field: 'leaseMs', expectation: 'must be an integer >= 1', value: 0 },
    });
  });

  it('validates the same way through the constructor and both factory forms', () => {
    const store = new InMemorySagaStore();
    const attempts = [
      () => new SagaEngine({ requestPollMs: 1.5 }, { store }),
      () => createSagaEngine({ requestPollMs: 1.5 }, { store }),
      () => createSagaEngine({ store, requestPollMs: 1.5 }),
    ];
    for (const attempt of attempts) {
      expect(attempt).toThrow(SagaEngineConfigError);
    }
    expect(() => createSagaEngine({} as never)).toThrow(/store/);
    expect(() => new SagaEngine({}, {} as never)).toThrow(SagaEngineConfigError);
  });
});
