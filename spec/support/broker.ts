import {
  createBroker,
  listen,
  type Broker,
  type BrokerOptions,
  type ConfigInput,
  type ListenAddresses,
  type ListenOptions,
} from '../../broker/index.js';

export interface TestBroker {
  readonly broker: Broker;
  readonly addresses: ListenAddresses;
  /** -1 when the broker was started with `port: -1`. */
  readonly tcpPort: number;
  readonly wsUrl: string;
  close(): Promise<void>;
}

/**
 * A broker on free loopback ports (port 0 everywhere), closed by the caller in after/afterEach. No ops listener
 * unless the config asks for one (`opsPort: 0`): `/healthz`, `/readyz` and `/metrics` answer on the WebSocket port,
 * and parallel runs never meet on the default 15692.
 */
export async function startBroker(
  config: ConfigInput = {},
  options: Omit<BrokerOptions, 'config'> & ListenOptions = {},
): Promise<TestBroker> {
  const { httpHandlers, ...given } = options;
  const broker = await createBroker({ ...given, config: { host: '127.0.0.1', port: 0, wsPort: 0, opsPort: -1, ...config } });
  const { addresses } = await listen(broker, httpHandlers === undefined ? {} : { httpHandlers });
  return {
    broker,
    addresses,
    tcpPort: addresses.tcp?.port ?? -1,
    wsUrl: addresses.ws?.url ?? '',
    close: () => broker.close(),
  };
}

let counter = 0;
/** Destination and group names unique per test run, so tests never hear each other. */
export function uniqueName(prefix = 't'): string {
  return `${prefix}${process.pid.toString(36)}${(++counter).toString(36)}${Date.now().toString(36)}`;
}
