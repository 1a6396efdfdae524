import { describe, expect, it } from 'vitest';
import { journalContract } from '../adapter/index.js';
import { InMemoryJournal } from './InMemoryJournal.js';

journalContract('InMemoryJournal', async (options) => ({ journal: new InMemoryJournal(options) }), {
  describe,
  it,
  expect,
});

describe('InMemoryJournal', () => {
  it('rejects a non-positive retention with BT_ERR_JOURNAL_CONFIG_INVALID', () => {
    expect(() => new InMemoryJournal({ retentionMs: 0 })).toThrowError(
      expect.objectContaining({ code: 'BT_ERR_JOURNAL_CONFIG_INVALID' }),
    );
  });

  it('keeps its own copy of a record', async () => {
    const journal = new InMemoryJournal();
    const body = new Uint8Array([1, 2, 3]);
    await journal.append({
      id: 'x',
      type: 't',
      schemaVersion: 1,
      topic: 't',
      service: 's',
      version: '1',
      time: new Date().toISOString(),
      message: { headers: {}, body },
    });
    body[0] = 9;
    expect(Array.from((await journal.get('x'))!.message.body)).toEqual([1, 2, 3]);
  });
});
