import { bindingKeyMatcher } from '@backtrack/core/adapter';
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
  const matches = bindingKeyMatcher(bindingKeys);
  if (matches === undefined) return undefined;
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
