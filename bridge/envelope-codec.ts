import type { BusEnvelope } from '../broker/ports/bus.js';

/**
 * Envelopes on Redis: a 4-byte length, a small JSON head (id, origin, vhost, destination, headers, time,
 * position), then the body bytes as they are. Bodies are never base64'd or re-encoded, so binary payloads
 * cost their own size.
 */
interface Head {
  i: string;
  o: string;
  v: string;
  d: string;
  h: (readonly [string, string])[];
  t: number;
  p?: number;
}

export function encodeEnvelope(e: BusEnvelope): Buffer {
  const head: Head = { i: e.id, o: e.origin, v: e.vhost, d: e.destination, h: [...e.headers], t: e.time };
  if (e.position !== undefined) head.p = e.position;
  const json = Buffer.from(JSON.stringify(head));
  const out = Buffer.allocUnsafe(4 + json.length + e.body.length);
  out.writeUInt32BE(json.length, 0);
  json.copy(out, 4);
  e.body.copy(out, 4 + json.length);
  return out;
}

/** Undefined for bytes that are not an envelope (another program on the same channel). */
export function decodeEnvelope(bytes: Buffer): BusEnvelope | undefined {
  if (bytes.length < 4) return undefined;
  const n = bytes.readUInt32BE(0);
  if (4 + n > bytes.length) return undefined;
  let head: unknown;
  try {
    head = JSON.parse(bytes.toString('utf8', 4, 4 + n));
  } catch {
    return undefined;
  }
  if (typeof head !== 'object' || head === null) return undefined;
  const h = head as Partial<Head>;
  if (
    typeof h.i !== 'string' ||
    typeof h.o !== 'string' ||
    typeof h.v !== 'string' ||
    typeof h.d !== 'string' ||
    !Array.isArray(h.h) ||
    typeof h.t !== 'number'
  )
    return undefined;
  const headers = h.h.filter((x): x is [string, string] => Array.isArray(x) && typeof x[0] === 'string' && typeof x[1] === 'string');
  return {
    id: h.i,
    origin: h.o,
    vhost: h.v,
    destination: h.d,
    headers,
    time: h.t,
    position: typeof h.p === 'number' ? h.p : undefined,
    body: bytes.subarray(4 + n),
  };
}
