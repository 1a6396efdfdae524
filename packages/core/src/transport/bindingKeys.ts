/**
 * Binding keys matched against event types as RabbitMQ's topic exchange matches routing keys:
 * words split by `.`, `*` one word, `#` zero or more. Shared by the in-memory transport and the
 * adapters that filter by type on their own side (Kafka's `bindingKeys`).
 */

/**
 * A matcher for `keys`, or undefined when they bind every type (a `#` key). Exact keys are a set
 * lookup; the answers for patterns are memoised per type (a bounded memo of the types seen).
 * The keys are not validated here: each caller checks its own option and throws its own error.
 */
export function bindingKeyMatcher(keys: Iterable<string>): ((type: string) => boolean) | undefined {
  const exact = new Set<string>();
  const patterns: string[][] = [];
  for (const key of keys) {
    if (key === '#') return undefined;
    const words = key.split('.');
    if (words.includes('*') || words.includes('#')) patterns.push(words);
    else exact.add(key);
  }
  const decided = new Map<string, boolean>();
  return (type) => {
    if (exact.has(type)) return true;
    if (patterns.length === 0) return false;
    let result = decided.get(type);
    if (result === undefined) {
      const words = type.split('.');
      result = patterns.some((pattern) => topicMatch(pattern, 0, words, 0));
      if (decided.size >= 1_024) decided.clear();
      decided.set(type, result);
    }
    return result;
  };
}

/** AMQP topic matching: `*` is one word, `#` zero or more. */
function topicMatch(
  pattern: readonly string[],
  i: number,
  words: readonly string[],
  j: number,
): boolean {
  for (; i < pattern.length; i++, j++) {
    const p = pattern[i]!;
    if (p === '#') {
      for (let k = j; k <= words.length; k++) if (topicMatch(pattern, i + 1, words, k)) return true;
      return false;
    }
    if (j >= words.length || (p !== '*' && p !== words[j])) return false;
  }
  return j === words.length;
}
