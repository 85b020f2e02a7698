/**
 * Offset bookkeeping for a consumer that commits by hand. A record's offset may be committed only once every
 * step it owes (delivery, and for topic records the history append) is done, and only when every record before
 * it in its partition is done too: steps finish out of order (history appends run concurrently), commits never
 * skip ahead. Plain numbers in, plain offsets out: no Kafka client here, so it is unit-tested without one.
 */

/** One record on its way: the steps left (delivery, history) before its offset may be committed. */
export interface Entry {
  readonly offset: number;
  remaining: number;
  readonly progress: PartitionProgress;
}

/** Tracks one partition's records in offset order; everything before `committable` is fully done. */
export class PartitionProgress {
  readonly topic: string;
  readonly partition: number;
  /** The next offset to read once everything done so far is committed (Kafka commits "the next to read"). */
  committable: number;
  committed: number;
  lastTracked = -1;
  /**
   * Replaced: a new generation or a re-read reads these records again (on this node or the partition's new owner),
   * so steps still owed here are owed there too; work queued for this one can be dropped.
   */
  stale = false;
  #entries: Entry[] = [];
  #head = 0;

  constructor(topic: string, partition: number, firstOffset: number) {
    this.topic = topic;
    this.partition = partition;
    this.committable = firstOffset;
    this.committed = firstOffset;
  }

  track(offset: number, steps: number): Entry {
    const entry: Entry = { offset, remaining: steps, progress: this };
    this.#entries.push(entry);
    this.lastTracked = offset;
    if (steps === 0) this.#advance();
    return entry;
  }

  step(entry: Entry): void {
    if (--entry.remaining === 0 && this.#entries[this.#head] === entry) this.#advance();
  }

  #advance(): void {
    const entries = this.#entries;
    let head = this.#head;
    while (head < entries.length && (entries[head] as Entry).remaining <= 0) {
      this.committable = (entries[head] as Entry).offset + 1;
      head++;
    }
    // Drop finished entries without shifting the array on every step: reset when empty, compact when the dead
    // prefix is large and more than half of it.
    if (head === entries.length) {
      this.#entries = [];
      head = 0;
    } else if (head > 1024 && head * 2 > entries.length) {
      this.#entries = entries.slice(head);
      head = 0;
    }
    this.#head = head;
  }
}

export interface CommitOffset {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
}

export interface OffsetCommitsOptions {
  /** Stores the offsets with the group coordinator (kafkajs `consumer.commitOffsets`); rejects when it could not. */
  commit: (offsets: readonly CommitOffset[]) => Promise<void>;
  committed?: ((offsets: readonly CommitOffset[]) => void) | undefined;
  /** A failed commit is not retried here: the next `commit()` (a timer tick, or the next owner) covers it. */
  failed?: ((error: unknown) => void) | undefined;
  /**
   * A commit unanswered this long no longer holds back the next one (default 5,000 ms). kafkajs retries a commit
   * made during a rebalance for up to half a minute; meanwhile nothing else would be committed, and the next owner
   * of a partition, after the next crash, would read all of that again.
   */
  timeoutMs?: number | undefined;
}

/** The partitions of one consumer generation and their commits: one commit in flight at a time. */
export class OffsetCommits {
  #progress = new Map<string, PartitionProgress>();
  #committing: Promise<void> | undefined;
  #commit: OffsetCommitsOptions['commit'];
  #committed: OffsetCommitsOptions['committed'];
  #failed: OffsetCommitsOptions['failed'];
  #timeoutMs: number;

  constructor(options: OffsetCommitsOptions) {
    if (typeof options.commit !== 'function') throw new TypeError('OffsetCommits needs a commit function');
    this.#commit = options.commit;
    this.#committed = options.committed;
    this.#failed = options.failed;
    this.#timeoutMs = options.timeoutMs ?? 5_000;
  }

  /** A new group generation: every assigned partition is read again from its committed offset. */
  reset(): void {
    for (const p of this.#progress.values()) p.stale = true;
    this.#progress = new Map();
    // A commit of the old generation still in flight (retried by kafkajs) must not hold back the new one's. If it
    // lands later it may set an offset back: those records are read again, never skipped (at least once).
    this.#committing = undefined;
  }

  /**
   * The progress of the partition a batch starting at `firstOffset` belongs to. A batch that starts at or before
   * an offset already tracked is a re-read (the consumer sought back after a failure or a rebalance): its
   * partition starts over from there, and the old entries, whose steps may still finish, no longer count.
   */
  partition(topic: string, partition: number, firstOffset: number): PartitionProgress {
    const key = `${topic}\u0000${partition}`;
    let progress = this.#progress.get(key);
    if (progress === undefined || firstOffset <= progress.lastTracked) {
      if (progress !== undefined) progress.stale = true;
      progress = new PartitionProgress(topic, partition, firstOffset);
      this.#progress.set(key, progress);
    }
    return progress;
  }

  /** Commits each partition up to its last fully done record; while a commit is in flight, returns that one. */
  commit(): Promise<void> {
    if (this.#committing !== undefined) return this.#committing;
    const due = [...this.#progress.values()].filter((p) => p.committable > p.committed);
    if (due.length === 0) return Promise.resolve();
    const offsets = due.map((p) => ({ topic: p.topic, partition: p.partition, offset: p.committable }));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer to an offset commit within ${this.#timeoutMs} ms`)), this.#timeoutMs);
      timer.unref();
    });
    const committing: Promise<void> = Promise.race([this.#commit(offsets), late])
      .then(
        () => {
          for (let i = 0; i < due.length; i++) (due[i] as PartitionProgress).committed = (offsets[i] as CommitOffset).offset;
          this.#committed?.(offsets);
        },
        (error: unknown) => {
          this.#failed?.(error);
        },
      )
      .finally(() => {
        clearTimeout(timer);
        if (this.#committing === committing) this.#committing = undefined;
      });
    this.#committing = committing;
    return committing;
  }

  /**
   * The last commit, at close. Two calls, both needed: while a commit is in flight, `commit()` hands back that
   * one, which carries the offsets as they were when it started; what finished since (the history appends close
   * just waited for) is committed only by the second call. With no commit in flight the second call finds nothing
   * due, or only what finished during the first, and then sends nothing.
   */
  flush(): Promise<void> {
    return this.commit().then(() => this.commit());
  }
}
