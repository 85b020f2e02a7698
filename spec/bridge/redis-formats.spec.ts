import { expect } from 'chai';
import fc from 'fast-check';
import type { BusEnvelope } from '../../broker/ports/bus.js';
import { decodeNative, encodeNative } from '../../bridge/redis-formats.js';

function envelope(headers: [string, string][], body: Buffer): BusEnvelope {
  return { id: 'n1-r7', origin: 'n1', vhost: '/', destination: '/topic/news.sports', headers, body, time: 1 };
}

describe('redis native formats (bridge/redis-formats)', () => {
  describe('raw', () => {
    it('carries the body bytes and nothing else, both ways', () => {
      const body = Buffer.from([0, 1, 0xff, 0x0a]);
      const out = encodeNative('raw', envelope([['content-type', 'text/plain']], body));
      expect(out.equals(body)).to.equal(true);
      expect(decodeNative('raw', Buffer.from('hello'))).to.deep.equal({ headers: [], body: Buffer.from('hello') });
    });
  });

  describe('json', () => {
    it('writes user headers (repeated ones as arrays, in order) and the message-id, and a UTF-8 body as text', () => {
      const out = encodeNative(
        'json',
        envelope(
          [
            ['content-type', 'text/plain'],
            ['tag', 'a'],
            ['tag', 'b'],
            ['destination', '/topic/elsewhere'],
          ],
          Buffer.from('héllo'),
        ),
      );
      expect(JSON.parse(out.toString())).to.deep.equal({
        headers: { 'message-id': 'n1-r7', 'content-type': 'text/plain', tag: ['a', 'b'] },
        body: 'héllo',
      });
    });

    it('writes a body that is not UTF-8 as base64 with "base64": true', () => {
      const body = Buffer.from([0xc3, 0x28, 0x00, 0xff]);
      const json = JSON.parse(encodeNative('json', envelope([], body)).toString()) as { body: string; base64: boolean };
      expect(json.base64).to.equal(true);
      expect(Buffer.from(json.body, 'base64').equals(body)).to.equal(true);
    });

    it('reads headers (arrays, numbers, booleans), a usable message-id, and drops the headers a MESSAGE sets itself', () => {
      const read = decodeNative(
        'json',
        Buffer.from(
          JSON.stringify({
            headers: { 'message-id': 'order-42', tag: ['x', 'y'], retries: 3, urgent: true, destination: '/topic/x', subscription: 's' },
            body: 'hi',
          }),
        ),
      );
      expect(read).to.deep.equal({
        headers: [
          ['tag', 'x'],
          ['tag', 'y'],
          ['retries', '3'],
          ['urgent', 'true'],
        ],
        body: Buffer.from('hi'),
        id: 'order-42',
      });
    });

    it('ignores a message-id that is not a plain name (the receiving node names the message)', () => {
      const read = decodeNative('json', Buffer.from(JSON.stringify({ headers: { 'message-id': 'a b:c' }, body: '' })));
      expect(read).to.deep.equal({ headers: [], body: Buffer.alloc(0), id: undefined });
    });

    it('reads a message without headers or body as an empty message', () => {
      expect(decodeNative('json', Buffer.from('{}'))).to.deep.equal({ headers: [], body: Buffer.alloc(0), id: undefined });
    });

    for (const [label, text] of [
      ['not JSON', 'hello'],
      ['a JSON array', '[1,2]'],
      ['a JSON string', '"hello"'],
      ['headers not an object', '{"headers":[],"body":"x"}'],
      ['a body that is not a string', '{"body":42}'],
      ['a null body', '{"body":null}'],
      ['base64 not a boolean', '{"body":"aGk=","base64":"yes"}'],
      ['a base64 body that is not base64', '{"body":"***","base64":true}'],
      ['a header value that is an object', '{"headers":{"a":{"b":1}},"body":""}'],
      ['a header value that is null', '{"headers":{"a":null},"body":""}'],
      ['a NUL in a header value', '{"headers":{"a":"x\\u0000y"},"body":""}'],
      ['an empty header name', '{"headers":{"":"x"},"body":""}'],
    ] as const) {
      it(`refuses ${label} as json-invalid`, () => {
        expect(decodeNative('json', Buffer.from(text))).to.equal('json-invalid');
      });
    }

    it('round-trips any body and headers (property)', () => {
      const name = fc
        .string({ minLength: 1, maxLength: 8 })
        .filter(
          (n) =>
            !n.includes('\0') &&
            !['message-id', 'destination', 'subscription', 'content-length', 'ack', 'receipt', 'transaction'].includes(n),
        );
      fc.assert(
        fc.property(
          fc.uint8Array({ maxLength: 64 }),
          fc.array(
            fc.tuple(
              name,
              fc.string({ maxLength: 8 }).filter((v) => !v.includes('\0')),
            ),
            { maxLength: 5 },
          ),
          (bytes, headers) => {
            const body = Buffer.from(bytes);
            const read = decodeNative('json', encodeNative('json', envelope(headers, body)));
            if (typeof read === 'string') throw new Error(read);
            expect(read.body.equals(body)).to.equal(true);
            expect(read.id).to.equal('n1-r7');
            // Repeated names come back grouped, each name's values in their order; names in a JSON object's key order
            // (first seen, except that integer-like names come first).
            const keys = Object.keys(Object.fromEntries(headers.map(([n]) => [n, 0])));
            const grouped = keys.flatMap((n) => headers.filter(([m]) => m === n));
            expect(read.headers).to.deep.equal(grouped);
          },
        ),
      );
    });
  });
});
