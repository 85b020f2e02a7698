import { InMemoryHistoryStore } from '../../bridge/memory-history.js';
import { historyConformance } from './history-conformance.js';

describe('bridge › history › memory', () => {
  historyConformance(
    'InMemoryHistoryStore',
    async (retention = { maxPerDestination: 0, maxAgeMs: 0 }) => new InMemoryHistoryStore(retention),
    {
      persistent: false,
      resumesKafkaIds: false,
    },
  );
});
