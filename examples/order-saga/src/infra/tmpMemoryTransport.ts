// TEMPORARY stand-in until core's InMemoryTransport lands. Not committed.
import type {
  OutgoingMessage,
  Subscription,
  SubscriptionOptions,
  Transport,
  IncomingMessage,
} from '@backtrack/core';

export class InMemoryTransport implements Transport {
  readonly name = 'memory';
  readonly #subs = new Set<{ options: SubscriptionOptions; open: boolean }>();
  readonly deadLetters: { message: OutgoingMessage; reason: string }[] = [];
  async publish(messages: OutgoingMessage[]): Promise<void> {
    for (const m of messages) {
      for (const s of this.#subs) {
        if (s.open && s.options.topics.includes(m.topic)) this.#deliver(s, m, 1, 0);
      }
    }
  }
  #deliver(
    s: { options: SubscriptionOptions; open: boolean },
    m: OutgoingMessage,
    attempt: number,
    delay: number,
  ) {
    setTimeout(async () => {
      try {
        if (!s.open) return;
        const incoming: IncomingMessage = {
          message: m.message,
          attempt,
          origin: { transport: 'memory', topic: m.topic, group: s.options.group },
        };
        const d = await s.options.processor.process(incoming);
        if (d.kind === 'retry') this.#deliver(s, m, attempt + 1, d.delayMs);
        else if (d.kind === 'redeliver') this.#deliver(s, m, attempt, d.delayMs);
        else if (d.kind === 'dead-letter') this.deadLetters.push({ message: m, reason: d.reason });
      } catch {
        /* stand-in */
      }
    }, delay);
  }
  async subscribe(options: SubscriptionOptions): Promise<Subscription> {
    const s = { options, open: true };
    this.#subs.add(s);
    return {
      close: async () => {
        s.open = false;
        this.#subs.delete(s);
      },
    };
  }
  async close(): Promise<void> {
    for (const s of this.#subs) s.open = false;
    this.#subs.clear();
  }
}
