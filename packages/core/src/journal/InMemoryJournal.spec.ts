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
  it('deletes expired records by itself on append (at most once per minute or retention window)', async () => {
    let now = Date.parse('2026-06-01T00:00:00.000Z');
    const journal = new InMemoryJournal({ retentionMs: 10_000, now: () => now });
    const append = (id: string) =>
      journal.append({
        id,
        type: 't',
        schemaVersion: 1,
        topic: 't',
        service: 's',
        version: '1',
        time: new Date(now).toISOString(),
        message: { headers: {}, body: new Uint8Array([1]) },
      });
    await append('a');
    await append('b');
    now += 5_000;
    await append('c');
    expect(journal.size).toBe(3);
    now += 6_000; // a and b are past retention; c is not
    await append('d');
    expect(journal.size).toBe(2);
    expect(await journal.get('a')).toBeUndefined();
    expect((await journal.get('c'))?.id).toBe('c');
  });
});
