/**
 * Measurements for the attack specs: how long the event loop stood still, and how much memory an attack left
 * behind. The broker runs in the spec's own process, so a stall of the broker is a stall of this loop.
 *
 * Bounds in the specs are generous and stated next to the figure an unbounded broker reached (from issue #8),
 * so a shared, noisy machine does not fail them while a regression to unbounded growth still does.
 */
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Runs `attack` while a 1 ms interval watches the loop; returns the longest gap between ticks beyond the
 * interval itself, in ms. A gap is the time one callback (or a chain of synchronous work) held the loop.
 */
export async function longestStallMs<T>(attack: () => Promise<T>): Promise<{ stallMs: number; result: T }> {
  let last = performance.now();
  let worst = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last - 1);
    last = now;
  }, 1);
  try {
    const result = await attack();
    // One more tick, so a stall at the very end of the attack is seen too.
    await sleep(5);
    return { stallMs: worst, result };
  } finally {
    clearInterval(timer);
  }
}

/** Resident memory after a full collection (needs `--expose-gc`, set in .mocharc.json), in bytes. */
export async function settledRss(): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run mocha with --expose-gc (node-option in .mocharc.json): memory bounds need it');
  for (let i = 0; i < 3; i++) {
    gc();
    await sleep(20);
  }
  return process.memoryUsage().rss;
}

/**
 * RSS growth that `attack` leaves behind while what it opened is still open (`release` runs after the second
 * reading, to close sockets and so on). In MiB.
 */
export async function retainedMiB(attack: () => Promise<void>, release: () => Promise<void> = async () => {}): Promise<number> {
  const before = await settledRss();
  try {
    await attack();
    return ((await settledRss()) - before) / (1024 * 1024);
  } finally {
    await release();
  }
}

/** Polls until `probe` is true or `ms` passed; the bounded, event-driven replacement for a fixed sleep. */
export async function until(probe: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}
