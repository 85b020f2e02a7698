/**
 * Issue #8: Prometheus labels come only from fixed sets. Unknown command names sent before authentication once
 * became label values (3,000 connections made `/metrics` 30 MB with 3,000 series); now they count as `unknown`.
 */
import { expect } from 'chai';
import { brokerMetrics } from '../../broker/metrics.js';
import { CLIENT_COMMANDS, LIMITS } from '../../broker/stats.js';
import type { RawClient } from '../support/raw.js';
import { stompFrame, useBroker } from '../broker/harness.js';

describe('security › metric labels (issue #8 item 5)', () => {
  const h = useBroker();

  it('counts unknown commands as command="unknown", so junk never becomes a series', async () => {
    const clients: RawClient[] = [];
    try {
      for (let i = 0; i < 300; i++) {
        const c = await h.raw();
        clients.push(c);
        c.send(stompFrame(`JUNK${i}X${'Q'.repeat(i % 50)}`));
      }
      await Promise.all(clients.map((c) => c.closed(5000)));
    } finally {
      for (const c of clients) c.close();
    }
    const labels = [...h.broker.stats.framesIn.keys()];
    expect(labels.filter((l) => l !== 'unknown' && !CLIENT_COMMANDS.has(l))).to.deep.equal([]);
    expect(h.broker.stats.framesIn.get('unknown')).to.equal(300);
    const text = await brokerMetrics(h.broker).scrape();
    const series = text.split('\n').filter((l) => l.startsWith('stompede_frames_received_total{'));
    expect(series).to.deep.equal(['stompede_frames_received_total{command="unknown"} 300']);
    expect(text).to.not.include('JUNK');
    // Every limit is a series from the start, at 0 or more.
    for (const name of LIMITS) expect(text).to.match(new RegExp(`stompede_limit_hits_total\\{limit="${name}"\\} \\d+`));
  });
});
