/**
 * RingBuffer's async iteration (iterate(), batches(), `for await`): the iterator object and
 * its state. The ring (lib/core/ringbuf.ts) holds the state while the iterator is its
 * consumer and lends it the few operations below; backpressure is the ring itself: a batch
 * is read only when the loop asks for a record.
 */

/** An iterator's state, held by the ring while it is the ring's consumer. */
export interface IterState {
  /** The loop's pending next(), while it waits for the poll. */
  waiting: { resolve: (r: IteratorResult<unknown>) => void; reject: (e: unknown) => void } | undefined;
  /** batches(): hand out the rest of the batch at once */
  whole: boolean;
  closeOnReturn: boolean;
}

/** What the ring lends its iterator. */
export interface IterHost {
  /** `it` is still the ring's iterator (not ended, not replaced). */
  owns(it: IterState): boolean;
  /** The ring is open. */
  open(): boolean;
  /** Records of the current batch not handed out yet. */
  buffered(): boolean;
  /** The next record of the batch, or (whole) the rest of it. */
  take(whole: boolean): unknown;
  /** Reads a batch now if the turn's budget allows; true when one was read. */
  readNow(): boolean;
  /** `it` ends: it is no longer the ring's consumer. */
  finish(it: IterState): void;
  /** Starts or stops the ring's poll to match its consumers (a waiting next() is one). */
  update(): void;
  close(): void;
}

const ended = <T>(): Promise<IteratorResult<T>> => Promise.resolve({ value: undefined, done: true });

/** The iterator of a closed ring: empty. */
export function closedIterator<T>(): AsyncIterableIterator<T> {
  return {
    next: ended,
    return: ended,
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

/** The iterator over `host` with state `it` (already the ring's consumer). */
export function ringIterator<T>(host: IterHost, it: IterState): AsyncIterableIterator<T> {
  const take = (): IteratorResult<T> => ({ value: host.take(it.whole) as T, done: false });
  return {
    next(): Promise<IteratorResult<T>> {
      if (!host.owns(it)) return ended();
      if (host.buffered()) return Promise.resolve(take());
      if (!host.open()) {
        host.finish(it);
        return ended();
      }
      // Read straight away while the turn's budget allows; otherwise wait for the poll.
      if (host.readNow() && host.buffered()) return Promise.resolve(take());
      return new Promise((resolve, reject) => {
        it.waiting = { resolve: resolve as (r: IteratorResult<unknown>) => void, reject };
        host.update();
      });
    },
    return(): Promise<IteratorResult<T>> {
      host.finish(it);
      if (it.closeOnReturn) host.close();
      return ended();
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}
