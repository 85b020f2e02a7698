/**
 * Waiting for something NOT to happen. A spec that can observe an event waits for that event (a RECEIPT sent after
 * the frame that must not arrive, see `expectQuiet` in spec/broker/harness.ts); these helpers are for the few checks
 * where only silence can be waited for: a timer that must not fire, a peer that must not be heard from. The bound
 * grows with the event-loop lag measured just before, so a loaded machine makes the wait longer instead of making
 * the check pass by accident or fail by chance.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';

/** No silence window is shorter: far above one local delivery on an idle machine. */
export const MIN_QUIET_MS = 100;
/** A frame that is due runs late by a few lags at most; twenty is a wide margin over that. */
const LAG_FACTOR = 20;
/** Past this the machine is too busy for any silence to mean much; the wait stays bounded. */
const MAX_QUIET_MS = 5_000;

/** The worst lateness of a few 1 ms timers right now (ms): how late a callback that is due runs. */
export async function eventLoopLag(samples = 5): Promise<number> {
  let worst = 0;
  for (let i = 0; i < samples; i++) {
    const start = performance.now();
    await delay(1);
    worst = Math.max(worst, performance.now() - start - 1);
  }
  return worst;
}

/** How long silence must last to count, now: max(`minMs`, 20 × measured lag), at most 5 s. */
export async function quietPeriod(minMs = MIN_QUIET_MS): Promise<number> {
  if (minMs < MIN_QUIET_MS) throw new TypeError(`a silence window under ${MIN_QUIET_MS} ms proves nothing under load (got ${minMs})`);
  return Math.min(Math.max(MAX_QUIET_MS, minMs), Math.max(minMs, LAG_FACTOR * (await eventLoopLag())));
}

/** Sleeps for `quietPeriod(minMs)`; resolves with the time waited. */
export async function waitQuiet(minMs = MIN_QUIET_MS): Promise<number> {
  const ms = await quietPeriod(minMs);
  await delay(ms);
  return ms;
}
