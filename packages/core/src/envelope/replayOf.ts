import type { Envelope } from './types.js';

/**
 * The extension attribute a rollback's replay carries: the id of the effect it replays (the
 * first one, when a replay is itself replayed). A consumer's default dedupe key takes this id
 * in place of the replay's own, so a consumer that already handled the original drops the
 * replay as a duplicate, and one that never did (it dead-lettered the original, say) handles it.
 */
export const REPLAY_OF = 'replayof';

/** The id a replay names in its `replayof` extension; undefined for anything else. */
export function replayOf(envelope: Pick<Envelope<unknown>, 'extensions'>): string | undefined {
  const id = envelope.extensions?.[REPLAY_OF];
  return typeof id === 'string' && id.length > 0 ? id : undefined;
}
