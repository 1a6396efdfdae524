/**
 * Resolves with `promise`'s value, or with `undefined` after `ms` (the promise keeps running; its
 * rejection is swallowed). For broker round trips during shutdown, which never answer on a
 * connection that died silently.
 */
export async function settleWithin<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
    timer.unref?.();
  });
  try {
    return await Promise.race([promise.catch(() => undefined), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
