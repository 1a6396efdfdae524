import type { KafkaHeaderValue } from '../client/KafkaClient.js';
import { KafkaConfigError } from '../errors.js';

/** The Kafka header of the CloudEvents `type` attribute (binary content mode). */
const TYPE_HEADER = 'ce_type';

/**
 * Which records a subscription hands to its processor, by their `ce_type` header: the
 * `bindingKeys` of {@link KafkaConsumerOptions}, matched as RabbitMQ's topic exchange and the
 * in-memory transport match them (words split by `.`, `*` one word, `#` zero or more).
 */
export interface TypeFilter {
  /**
   * False only when the record has a `ce_type` header that no binding key matches. A record
   * without one (structured content mode, a foreign record), or with one that is not text, is
   * always delivered: the processor decides (and dead-letters what it cannot read).
   */
  delivers(headers: Record<string, KafkaHeaderValue | null>): boolean;
}

/**
 * The filter of `bindingKeys`, or undefined when every type is delivered (no keys, or `#`).
 * @throws {KafkaConfigError} when the keys are not a non-empty array of non-empty strings.
 */
export function typeFilterOf(bindingKeys: readonly string[] | undefined): TypeFilter | undefined {
  if (bindingKeys === undefined) return undefined;
  if (
    !Array.isArray(bindingKeys) ||
    bindingKeys.length === 0 ||
    bindingKeys.some((k) => typeof k !== 'string' || k.length === 0)
  ) {
    throw new KafkaConfigError(
      'bindingKeys',
      'must be a non-empty array of non-empty strings (use "#" for all)',
      bindingKeys,
    );
  }
  const exact = new Set<string>();
  const patterns: string[][] = [];
  for (const key of bindingKeys) {
    if (key === '#') return undefined;
    const words = key.split('.');
    if (words.includes('*') || words.includes('#')) patterns.push(words);
    else exact.add(key);
  }
  const decided = new Map<string, boolean>();
  const matches = (type: string): boolean => {
    if (exact.has(type)) return true;
    if (patterns.length === 0) return false;
    let result = decided.get(type);
    if (result === undefined) {
      const words = type.split('.');
      result = patterns.some((pattern) => topicMatch(pattern, 0, words, 0));
      if (decided.size >= 1_024) decided.clear(); // a bounded memo of the types seen
      decided.set(type, result);
    }
    return result;
  };
  return {
    delivers(headers) {
      const value = headers[TYPE_HEADER];
      // Buffer.toString() is Node's direct UTF-8 path; a repeated header or anything else
      // (null, an array, a number) is left to the processor.
      if (value instanceof Buffer) return matches(value.toString());
      if (typeof value === 'string') return matches(value);
      return true;
    },
  };
}

/** AMQP topic matching: `*` is one word, `#` zero or more. */
function topicMatch(pattern: string[], p: number, words: string[], w: number): boolean {
  if (p === pattern.length) return w === words.length;
  const part = pattern[p]!;
  if (part === '#') {
    for (let i = w; i <= words.length; i++) if (topicMatch(pattern, p + 1, words, i)) return true;
    return false;
  }
  if (w === words.length) return false;
  return (part === '*' || part === words[w]) && topicMatch(pattern, p + 1, words, w + 1);
}
