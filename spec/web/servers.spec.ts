/**
 * web/servers.ts: the WebSocket URLs the chat page may connect to. Fallbacks from `?servers=` are followed only
 * on the page's own host name (any port) and with the page's scheme, because the page sends credentials there.
 */
import { expect } from 'chai';
import { fallbackServers, MAX_FALLBACKS, ownServer, serverList, type PageLocation } from '../../web/servers.js';

const HTTP: PageLocation = { protocol: 'http:', hostname: '127.0.0.1', host: '127.0.0.1:15674' };
const HTTPS: PageLocation = { protocol: 'https:', hostname: 'chat.example.com', host: 'chat.example.com' };

describe('web: the servers the chat page connects to', () => {
  it('connects first to its own node, on the path the node gives', () => {
    expect(ownServer(HTTP, '/ws')).to.equal('ws://127.0.0.1:15674/ws');
    expect(ownServer(HTTP, '/stomp')).to.equal('ws://127.0.0.1:15674/stomp');
    expect(ownServer(HTTPS, '/ws')).to.equal('wss://chat.example.com/ws');
    expect(serverList(HTTP, '/stomp', null)).to.deep.equal(['ws://127.0.0.1:15674/stomp']);
  });

  it('accepts fallbacks on the same host name at any port and path, in order, without repeats', () => {
    const servers = 'ws://127.0.0.1:15684/ws, ws://127.0.0.1:15694/stomp,ws://127.0.0.1:15674/ws,ws://127.0.0.1:15684/ws';
    expect(serverList(HTTP, '/ws', servers)).to.deep.equal([
      'ws://127.0.0.1:15674/ws',
      'ws://127.0.0.1:15684/ws',
      'ws://127.0.0.1:15694/stomp',
    ]);
    expect(fallbackServers('wss://chat.example.com:8443/ws,wss://CHAT.example.com/ws', HTTPS)).to.deep.equal([
      'wss://chat.example.com:8443/ws',
      'wss://chat.example.com/ws',
    ]);
    const v6: PageLocation = { protocol: 'http:', hostname: '[::1]', host: '[::1]:15674' };
    expect(fallbackServers('ws://[::1]:15684/ws,ws://127.0.0.1:15684/ws', v6)).to.deep.equal(['ws://[::1]:15684/ws']);
  });

  it('drops fallbacks on any other host, including look-alikes', () => {
    const others = [
      'ws://evil.example/ws',
      'ws://127.0.0.2:15684/ws',
      'ws://localhost:15684/ws',
      'ws://127.0.0.1.evil.example/ws',
      'ws://evil.example/127.0.0.1',
      'ws://evil.example?h=127.0.0.1',
      'ws://evil.example#127.0.0.1',
      'ws://127.0.0.1@evil.example/ws',
      'ws://0x7f.0.0.2/ws',
    ];
    for (const url of others) expect([url, fallbackServers(url, HTTP)]).to.deep.equal([url, []]);
    expect(serverList(HTTP, '/ws', others.join(','))).to.deep.equal(['ws://127.0.0.1:15674/ws']);
  });

  it('drops other schemes: no clear-text fallback under https, no wss under http, nothing but WebSockets', () => {
    expect(fallbackServers('ws://chat.example.com:15684/ws', HTTPS)).to.deep.equal([]);
    expect(fallbackServers('wss://127.0.0.1:15673/ws', HTTP)).to.deep.equal([]);
    for (const url of [
      'http://127.0.0.1:15684/ws',
      'https://127.0.0.1/ws',
      'javascript:alert(1)',
      'file:///etc/passwd',
      '//127.0.0.1:15684/ws',
      '/ws',
    ]) {
      expect([url, fallbackServers(url, HTTP)]).to.deep.equal([url, []]);
    }
  });

  it('drops URLs with credentials in them, strips fragments, and ignores junk', () => {
    expect(fallbackServers('ws://user:pw@127.0.0.1:15684/ws,ws://user@127.0.0.1:15684/ws', HTTP)).to.deep.equal([]);
    expect(fallbackServers('ws://127.0.0.1:15684/ws#x', HTTP)).to.deep.equal(['ws://127.0.0.1:15684/ws']);
    expect(fallbackServers('', HTTP)).to.deep.equal([]);
    expect(fallbackServers(' , ,not a url,ws://,ws://127.0.0.1:99999/ws', HTTP)).to.deep.equal([]);
  });

  it(`follows at most ${MAX_FALLBACKS} fallbacks`, () => {
    const many = Array.from({ length: 40 }, (_, i) => `ws://127.0.0.1:${20000 + i}/ws`).join(',');
    const list = fallbackServers(many, HTTP);
    expect(list).to.have.length(MAX_FALLBACKS);
    expect(list[0]).to.equal('ws://127.0.0.1:20000/ws');
  });
});
