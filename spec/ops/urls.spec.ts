/**
 * The URLs of the CLI's startup line (bin/urls.ts): every address a user needs, with a host they can connect to,
 * never `0.0.0.0` or `::` (which name no machine a client could reach).
 */
import { expect } from 'chai';
import { hostname, networkInterfaces } from 'node:os';
import { listeningUrls, shownHost } from '../../bin/urls.js';
import type { ListenAddresses } from '../../broker/index.js';

/** What a user of this machine could connect to: its external IPv4 addresses, else its host name. */
function reachableNames(): string[] {
  const external = Object.values(networkInterfaces())
    .flatMap((addresses) => addresses ?? [])
    .filter((a) => a.family === 'IPv4' && !a.internal)
    .map((a) => a.address);
  return external.length > 0 ? external : [hostname()];
}

describe('ops › startup URLs', () => {
  it('shows the configured host as it is, an IPv6 literal in brackets', () => {
    expect(shownHost('127.0.0.1')).to.equal('127.0.0.1');
    expect(shownHost('broker.example')).to.equal('broker.example');
    expect(shownHost('::1')).to.equal('[::1]');
  });

  for (const any of ['0.0.0.0', '::']) {
    it(`shows this machine's address or name for ${any} (every interface)`, () => {
      expect(reachableNames()).to.include(shownHost(any));
    });
  }

  it('lists STOMP, WebSocket, the chat page, TLS, WSS and ops, with the shown host', () => {
    const addresses: ListenAddresses = {
      tcp: { host: '0.0.0.0', port: 61613 },
      ws: { host: '0.0.0.0', port: 15674, path: '/ws', url: 'ws://0.0.0.0:15674/ws' },
      tls: { host: '0.0.0.0', port: 61614 },
      wss: { host: '0.0.0.0', port: 15673, path: '/ws', url: 'wss://0.0.0.0:15673/ws' },
      ops: { host: '0.0.0.0', port: 15692, url: 'http://0.0.0.0:15692' },
    };
    const h = shownHost('0.0.0.0');
    expect(listeningUrls(addresses, '0.0.0.0')).to.deep.equal({
      stomp: `tcp://${h}:61613`,
      websocket: `ws://${h}:15674/ws`,
      chat: `http://${h}:15674/`,
      stompTls: `ssl://${h}:61614`,
      websocketTls: `wss://${h}:15673/ws`,
      ops: `http://${h}:15692`,
    });
    const secureOnly = listeningUrls({ ...addresses, ws: undefined, ops: undefined }, '127.0.0.1');
    expect(secureOnly).to.deep.equal({
      stomp: 'tcp://127.0.0.1:61613',
      stompTls: 'ssl://127.0.0.1:61614',
      websocketTls: 'wss://127.0.0.1:15673/ws',
      chat: 'https://127.0.0.1:15673/',
    });
  });
});
