/**
 * amqplib queues every frame its channels send (a publish, an ack) in the channel's buffer, and
 * its multiplexer moves them to the socket on the next `setImmediate`, one `socket.write` per
 * frame: one system call, and one wake-up of the broker, per publish and per ack. Corking the
 * socket for that turn of the multiplexer hands the frames of the turn to the kernel as one
 * `writev` instead (same bytes, same order; the socket's high-water mark still pauses the
 * multiplexer, which resumes on `'drain'` as before).
 *
 * This reaches into amqplib's `Connection` (`muxer._readIncoming`, `stream`); when they are not
 * there (another amqplib version), nothing is changed and the connection works as amqplib wrote it.
 */

interface MuxLike {
  _readIncoming: (this: unknown) => void;
  [COALESCED]?: true;
}

interface StreamLike {
  cork(): void;
  uncork(): void;
}

const COALESCED = Symbol('backtrack.coalescedWrites');

/**
 * Makes the frames an amqplib connection (`ChannelModel.connection`) sends in one turn of its
 * multiplexer go to the socket as one write. Idempotent. Returns whether the connection is (now
 * or already) coalescing.
 */
export function coalesceWrites(connection: unknown): boolean {
  if (typeof connection !== 'object' || connection === null) return false;
  const { muxer, stream } = connection as { muxer?: unknown; stream?: unknown };
  if (!isMux(muxer) || !isCorkable(stream)) return false;
  if (muxer[COALESCED]) return true;
  const readIncoming = muxer._readIncoming;
  muxer._readIncoming = function (this: unknown): void {
    stream.cork();
    try {
      readIncoming.call(this);
    } finally {
      stream.uncork();
    }
  };
  muxer[COALESCED] = true;
  return true;
}

function isMux(value: unknown): value is MuxLike {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { _readIncoming?: unknown })._readIncoming === 'function'
  );
}

function isCorkable(value: unknown): value is StreamLike {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { cork?: unknown }).cork === 'function' &&
    typeof (value as { uncork?: unknown }).uncork === 'function'
  );
}
