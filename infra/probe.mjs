#!/usr/bin/env node
// Small network checks for infra/services.sh, in plain Node (no npm packages: it runs before `npm ci` may have).
//
//   node infra/probe.mjs free-port [PREFERRED...]  prints the first preferred port free on 127.0.0.1, else a free one
//   node infra/probe.mjs port-free PORT            exit 0 if PORT can be bound on 127.0.0.1
//   node infra/probe.mjs kafka HOST:PORT           Metadata request; exit 0 once a broker and an active controller answer
//   node infra/probe.mjs mongo HOST:PORT           OP_MSG {ping: 1}; exit 0 on {ok: 1}
//
// Each probe gives up after 3 s so the caller's wait loop keeps control of the overall timeout.
import net from 'node:net';

const TIMEOUT_MS = 3000;

function canBind(port) {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

function anyFreePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function parseHostPort(arg) {
  const i = arg.lastIndexOf(':');
  if (i < 0) throw new TypeError(`expected HOST:PORT, got ${arg}`);
  return { host: arg.slice(0, i), port: Number(arg.slice(i + 1)) };
}

// Sends one request and resolves with the first complete length-prefixed response.
// `frameLength(buf)` returns the total response length once enough bytes are in, else undefined.
function roundTrip({ host, port }, request, frameLength) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(new Error(`no answer from ${host}:${port} in ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('connect', () => socket.write(request));
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      const len = buf.length >= 4 ? frameLength(buf) : undefined;
      if (len !== undefined && buf.length >= len) {
        clearTimeout(timer);
        socket.destroy();
        resolve(buf.subarray(0, len));
      }
    });
    socket.once('end', () => {
      clearTimeout(timer);
      reject(new Error('connection closed before a full answer'));
    });
  });
}

// Kafka Metadata v1 (valid on 3.x and 4.x): header v1 = api_key, api_version, correlation_id, client_id;
// body = topics (null array: all topics). Answer: correlation_id, brokers[], controller_id, topics[].
async function probeKafka(target) {
  const clientId = Buffer.from('stompede-probe');
  const body = Buffer.alloc(2 + 2 + 4 + 2 + clientId.length + 4);
  let o = 0;
  o = body.writeInt16BE(3, o); // api_key: Metadata
  o = body.writeInt16BE(1, o); // api_version 1
  o = body.writeInt32BE(42, o); // correlation_id
  o = body.writeInt16BE(clientId.length, o);
  o += clientId.copy(body, o);
  body.writeInt32BE(-1, o); // topics: null = all
  const size = Buffer.alloc(4);
  size.writeInt32BE(body.length);
  const res = await roundTrip(target, Buffer.concat([size, body]), (b) => 4 + b.readInt32BE(0));

  let p = 4;
  const correlationId = res.readInt32BE(p);
  p += 4;
  if (correlationId !== 42) throw new Error(`unexpected correlation id ${correlationId}`);
  const brokerCount = res.readInt32BE(p);
  p += 4;
  const brokers = [];
  for (let i = 0; i < brokerCount; i++) {
    const nodeId = res.readInt32BE(p);
    p += 4;
    const hostLen = res.readInt16BE(p);
    p += 2;
    const host = res.toString('utf8', p, p + hostLen);
    p += hostLen;
    const port = res.readInt32BE(p);
    p += 4;
    const rackLen = res.readInt16BE(p);
    p += 2;
    if (rackLen > 0) p += rackLen;
    brokers.push(`${nodeId}@${host}:${port}`);
  }
  const controllerId = res.readInt32BE(p);
  if (brokers.length === 0) throw new Error('metadata lists no broker yet');
  if (controllerId < 0) throw new Error('no active controller yet');
  return `brokers ${brokers.join(',')}, controller ${controllerId}`;
}

// MongoDB OP_MSG (opCode 2013) with one body section {ping: 1, $db: "admin"}; answer {ok: 1}.
function bsonDoc(fields) {
  const parts = [];
  for (const [key, value] of fields) {
    const name = Buffer.concat([Buffer.from(key), Buffer.of(0)]);
    if (typeof value === 'number') {
      const v = Buffer.alloc(4);
      v.writeInt32LE(value);
      parts.push(Buffer.of(0x10), name, v);
    } else {
      const s = Buffer.concat([Buffer.from(value), Buffer.of(0)]);
      const len = Buffer.alloc(4);
      len.writeInt32LE(s.length);
      parts.push(Buffer.of(0x02), name, len, s);
    }
  }
  const content = Buffer.concat([...parts, Buffer.of(0)]);
  const len = Buffer.alloc(4);
  len.writeInt32LE(content.length + 4);
  return Buffer.concat([len, content]);
}

// Reads the top-level "ok" field of the reply's body document (double, int32, int64 or bool).
function okField(doc) {
  let p = 4;
  while (p < doc.length && doc[p] !== 0) {
    const type = doc[p++];
    const end = doc.indexOf(0, p);
    const key = doc.toString('utf8', p, end);
    p = end + 1;
    let value;
    let size;
    switch (type) {
      case 0x01:
        value = doc.readDoubleLE(p);
        size = 8;
        break;
      case 0x10:
        value = doc.readInt32LE(p);
        size = 4;
        break;
      case 0x12:
        value = Number(doc.readBigInt64LE(p));
        size = 8;
        break;
      case 0x08:
        value = doc[p];
        size = 1;
        break;
      case 0x09:
      case 0x11:
        size = 8;
        break;
      case 0x02:
      case 0x0d:
        size = 4 + doc.readInt32LE(p);
        break;
      case 0x03:
      case 0x04:
        size = doc.readInt32LE(p);
        break;
      case 0x05:
        size = 5 + doc.readInt32LE(p);
        break;
      case 0x07:
        size = 12;
        break;
      case 0x0a:
        size = 0;
        break;
      default:
        throw new Error(`unexpected BSON type 0x${type.toString(16)} in reply`);
    }
    if (key === 'ok') return value;
    p += size;
  }
  return undefined;
}

async function probeMongo(target) {
  const doc = bsonDoc([
    ['ping', 1],
    ['$db', 'admin'],
  ]);
  const header = Buffer.alloc(16);
  const flags = Buffer.alloc(4);
  const msgLen = 16 + 4 + 1 + doc.length;
  header.writeInt32LE(msgLen, 0);
  header.writeInt32LE(7, 4); // requestID
  header.writeInt32LE(0, 8); // responseTo
  header.writeInt32LE(2013, 12); // OP_MSG
  const res = await roundTrip(target, Buffer.concat([header, flags, Buffer.of(0), doc]), (b) => b.readInt32LE(0));
  const opCode = res.readInt32LE(12);
  if (opCode !== 2013) throw new Error(`unexpected reply opCode ${opCode}`);
  if (res[20] !== 0) throw new Error('reply does not start with a body section');
  const ok = okField(res.subarray(21));
  if (ok !== 1) throw new Error(`ping answered ok=${ok}`);
  return 'ping ok';
}

async function main(argv) {
  const [cmd, ...args] = argv;
  switch (cmd) {
    case 'free-port': {
      for (const p of args.map(Number)) {
        if (Number.isInteger(p) && p > 0 && (await canBind(p))) {
          console.log(p);
          return 0;
        }
      }
      console.log(await anyFreePort());
      return 0;
    }
    case 'port-free':
      return (await canBind(Number(args[0]))) ? 0 : 1;
    case 'kafka':
      console.log(await probeKafka(parseHostPort(args[0])));
      return 0;
    case 'mongo':
      console.log(await probeMongo(parseHostPort(args[0])));
      return 0;
    default:
      console.error('usage: probe.mjs free-port [PORT...] | port-free PORT | kafka HOST:PORT | mongo HOST:PORT');
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(err.message);
    process.exitCode = 1;
  },
);
