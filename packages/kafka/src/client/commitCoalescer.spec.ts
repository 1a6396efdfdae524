import { describe, expect, it, vi } from 'vitest';
import { CommitCoalescer, type CommitTopics } from './commitCoalescer.js';

function deferredSender() {
  const requests: { topics: CommitTopics; settle: (error?: Error) => void }[] = [];
  const send = (topics: CommitTopics) =>
    new Promise<void>((resolve, reject) => {
      requests.push({ topics, settle: (error) => (error ? reject(error) : resolve()) });
    });
  return { requests, send };
}
const tick = () => new Promise((r) => setImmediate(r));

describe('CommitCoalescer', () => {
  it('sends after the current turn when idle: the commits of one turn share a request', async () => {
    const { requests, send } = deferredSender();
    const commits = new CommitCoalescer(send);
    const a = commits.commit('t', 0, '5');
    const b = commits.commit('t', 1, '7');
    // Nothing goes out in the synchronous code that asked.
    expect(requests).toHaveLength(0);
    await tick();
    expect(requests).toHaveLength(1);
    expect(requests[0]!.topics).toEqual([
      {
        topic: 't',
        partitions: [
          { partition: 0, offset: '5' },
          { partition: 1, offset: '7' },
        ],
      },
    ]);
    requests[0]!.settle();
    await expect(Promise.all([a, b])).resolves.toEqual([undefined, undefined]);
    await tick();
    expect(requests).toHaveLength(1);
  });

  it('commits asked for while a request is in flight travel together in the next request', async () => {
    const { requests, send } = deferredSender();
    const commits = new CommitCoalescer(send);
    const done: string[] = [];
    const first = commits.commit('t', 0, '5').then(() => done.push('t0'));
    await tick();
    expect(requests).toHaveLength(1);
    const later = [
      commits.commit('t', 1, '7').then(() => done.push('t1')),
      commits.commit('u', 0, '3').then(() => done.push('u0')),
      commits.commit('t', 1, '9').then(() => done.push('t1 again')),
    ];
    await tick();
    // Nothing more goes out while the first request is in flight.
    expect(requests).toHaveLength(1);
    expect(requests[0]!.topics).toEqual([
      { topic: 't', partitions: [{ partition: 0, offset: '5' }] },
    ]);
    requests[0]!.settle();
    await first;
    await tick();
    expect(done).toEqual(['t0']);
    // One request for the three: the later offset of t/1 supersedes the earlier one.
    expect(requests).toHaveLength(2);
    expect(requests[1]!.topics).toEqual([
      { topic: 't', partitions: [{ partition: 1, offset: '9' }] },
      { topic: 'u', partitions: [{ partition: 0, offset: '3' }] },
    ]);
    requests[1]!.settle();
    await Promise.all(later);
    expect(done.sort()).toEqual(['t0', 't1', 't1 again', 'u0']);
  });

  it('rejects every caller of a failed request with its error, and goes on with the next', async () => {
    const { requests, send } = deferredSender();
    const commits = new CommitCoalescer(send);
    const a = commits.commit('t', 0, '1');
    await tick();
    const b = commits.commit('t', 1, '1');
    requests[0]!.settle(new Error('rebalancing'));
    await expect(a).rejects.toThrow('rebalancing');
    await tick();
    requests[1]!.settle(new Error('not coordinator'));
    await expect(b).rejects.toThrow('not coordinator');
    const c = commits.commit('t', 0, '2');
    await tick();
    expect(requests).toHaveLength(3);
    requests[2]!.settle();
    await expect(c).resolves.toBeUndefined();
  });

  it('rejects (never throws) when the sender throws synchronously', async () => {
    const commits = new CommitCoalescer(() => {
      throw new Error('no batch is running');
    });
    await expect(commits.commit('t', 0, '1')).rejects.toThrow('no batch is running');
    // Not stuck in flight.
    await expect(commits.commit('t', 0, '2')).rejects.toThrow('no batch is running');
  });

  describe('with an interval', () => {
    function clocked(intervalMs: number) {
      const { requests, send } = deferredSender();
      const clock = { now: 1_000 };
      const commits = new CommitCoalescer(send, { intervalMs, now: () => clock.now });
      return { requests, commits, clock };
    }

    it('sends the first commit at once, then at most one request per interval', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      try {
        const { requests, commits, clock } = clocked(1_000);
        const first = commits.commit('t', 0, '5');
        await tick();
        expect(requests).toHaveLength(1);
        requests[0]!.settle();
        await first;
        // Acknowledged after 10 ms: the next commits wait for the rest of the interval.
        clock.now += 10;
        const later = [commits.commit('t', 0, '8'), commits.commit('t', 1, '2')];
        await tick();
        await tick();
        expect(requests).toHaveLength(1);
        clock.now += 989;
        vi.advanceTimersByTime(989);
        await tick();
        expect(requests).toHaveLength(1);
        clock.now += 1;
        vi.advanceTimersByTime(1);
        await tick();
        expect(requests).toHaveLength(2);
        expect(requests[1]!.topics).toEqual([
          {
            topic: 't',
            partitions: [
              { partition: 0, offset: '8' },
              { partition: 1, offset: '2' },
            ],
          },
        ]);
        requests[1]!.settle();
        await expect(Promise.all(later)).resolves.toEqual([undefined, undefined]);
      } finally {
        vi.useRealTimers();
      }
    });

    it('waits for the interval after a request that was in flight, unless flushed', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      try {
        const { requests, commits } = clocked(60_000);
        void commits.commit('t', 0, '1');
        await tick();
        const second = commits.commit('t', 0, '2');
        requests[0]!.settle();
        await tick();
        await tick();
        // Asked for while the first was in flight: waits for the interval.
        expect(requests).toHaveLength(1);
        commits.flush();
        expect(requests).toHaveLength(2);
        expect(requests[1]!.topics).toEqual([
          { topic: 't', partitions: [{ partition: 0, offset: '2' }] },
        ]);
        requests[1]!.settle();
        await expect(second).resolves.toBeUndefined();
        // The cancelled timer sends nothing more.
        vi.advanceTimersByTime(60_000);
        await tick();
        expect(requests).toHaveLength(2);
      } finally {
        vi.useRealTimers();
      }
    });

    it('a flush while a request is in flight sends what waits right after it', async () => {
      const { requests, commits } = clocked(60_000);
      void commits.commit('t', 0, '1');
      await tick();
      const second = commits.commit('t', 1, '4');
      commits.flush();
      expect(requests).toHaveLength(1);
      requests[0]!.settle();
      await tick();
      await tick();
      expect(requests).toHaveLength(2);
      expect(requests[1]!.topics).toEqual([
        { topic: 't', partitions: [{ partition: 1, offset: '4' }] },
      ]);
      requests[1]!.settle();
      await expect(second).resolves.toBeUndefined();
    });
  });
});
