/**
 * broker/web.ts: the chat page's static files on the WebSocket port. Unit part on a temporary root (no build
 * needed), then the built page (dist/web, made by `make build`) through a real broker's HTTP port.
 */
import { expect } from 'chai';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:http';
import { WEB_ROOT, webFileName, webPageHandler } from '../../broker/web.js';
import { startBroker, type TestBroker } from '../support/broker.js';

interface Answer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
}

/** A raw request: the path is sent exactly as given (no normalisation of `..` or `%2e`). */
function fetchRaw(port: number, path: string, method = 'GET'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('web: the chat page handler', () => {
  describe('webFileName', () => {
    it('maps / (with or without a query) to index.html and plain names to themselves', () => {
      expect(webFileName('/')).to.equal('index.html');
      expect(webFileName('/?servers=ws://a/ws,ws://b/ws')).to.equal('index.html');
      expect(webFileName('/chat.js')).to.equal('chat.js');
      expect(webFileName('/style.css?v=2')).to.equal('style.css');
      expect(webFileName('/stomp.umd.min.js')).to.equal('stomp.umd.min.js');
    });

    it('refuses every name that could leave the root, hidden files and unknown types', () => {
      for (const url of [
        '/../package.json',
        '/..%2fpackage.json',
        '/%2e%2e/package.json',
        '/%2e%2e%2fpackage.json',
        '/a/b.js',
        '/..',
        '/.env',
        '/.hidden.js',
        '/%00.js',
        '/a%5cb.js',
        '/..%5cpackage.json',
        '/chat.ts',
        '/x.d',
        '/%E0%A4%A.js',
        '/ws',
        '/healthz',
      ]) {
        expect(webFileName(url), url).to.equal(undefined);
      }
    });
  });

  describe('on a temporary root', () => {
    let root: string;
    let server: Server;
    let port: number;

    before(async () => {
      root = mkdtempSync(join(tmpdir(), 'stompede-web-'));
      writeFileSync(join(root, 'index.html'), '<!doctype html><title>t</title>');
      writeFileSync(join(root, 'chat.js'), 'export {};\n');
      writeFileSync(join(root, 'style.css'), 'body{}\n');
      writeFileSync(join(root, 'notes.ts'), 'secret');
      mkdirSync(join(root, 'dir.js'));
      writeFileSync(join(root, '..', `outside-${process.pid}.js`), 'outside');
      const handler = webPageHandler(root);
      server = createServer((req, res) => {
        if (!handler(req, res)) res.writeHead(404).end('fell through');
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const a = server.address();
      port = typeof a === 'object' && a !== null ? a.port : 0;
    });

    after(async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(root, { recursive: true, force: true });
      rmSync(join(root, '..', `outside-${process.pid}.js`), { force: true });
    });

    it('serves / as HTML with a content security policy, and each file with its content type', async () => {
      const page = await fetchRaw(port, '/');
      expect(page.status).to.equal(200);
      expect(page.headers['content-type']).to.equal('text/html; charset=utf-8');
      expect(page.headers['content-security-policy']).to.include("script-src 'self'");
      expect(page.body).to.equal('<!doctype html><title>t</title>');
      const js = await fetchRaw(port, '/chat.js');
      expect([js.status, js.headers['content-type'], js.body]).to.deep.equal([200, 'text/javascript; charset=utf-8', 'export {};\n']);
      expect(js.headers['x-content-type-options']).to.equal('nosniff');
      const css = await fetchRaw(port, '/style.css');
      expect([css.status, css.headers['content-type']]).to.deep.equal([200, 'text/css; charset=utf-8']);
    });

    it('answers HEAD with the headers only, and other methods with 405', async () => {
      const head = await fetchRaw(port, '/chat.js', 'HEAD');
      expect(head.status).to.equal(200);
      expect(head.headers['content-length']).to.equal('11');
      expect(head.body).to.equal('');
      const post = await fetchRaw(port, '/', 'POST');
      expect(post.status).to.equal(405);
      expect(post.headers.allow).to.equal('GET, HEAD');
    });

    it('lets unknown paths, other types, directories and traversal attempts fall through', async () => {
      for (const path of [
        '/missing.js',
        '/notes.ts',
        '/dir.js',
        `/../outside-${process.pid}.js`,
        `/..%2foutside-${process.pid}.js`,
        `/%2e%2e%2foutside-${process.pid}.js`,
        '/%2e%2e/%2e%2e/etc/passwd',
      ]) {
        const a = await fetchRaw(port, path);
        expect([path, a.status, a.body]).to.deep.equal([path, 404, 'fell through']);
      }
    });

    it('says how to build the page when index.html is missing', async () => {
      const empty = mkdtempSync(join(tmpdir(), 'stompede-web-empty-'));
      const handler = webPageHandler(empty);
      const s = createServer((req, res) => {
        if (!handler(req, res)) res.writeHead(404).end();
      });
      await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
      try {
        const a = s.address();
        const answer = await fetchRaw(typeof a === 'object' && a !== null ? a.port : 0, '/');
        expect(answer.status).to.equal(503);
        expect(answer.body).to.match(/make build/);
      } finally {
        await new Promise<void>((resolve) => s.close(() => resolve()));
        rmSync(empty, { recursive: true, force: true });
      }
    });
  });

  describe('the built page on a broker', () => {
    let h: TestBroker;
    let port: number;

    before(async () => {
      h = await startBroker();
      port = h.addresses.ws?.port ?? 0;
    });

    after(() => h.close());

    it(`serves index.html, chat.js, style.css and the bundled stompjs from ${WEB_ROOT} (run make build first)`, async () => {
      const page = await fetchRaw(port, '/');
      expect(page.status, page.body).to.equal(200);
      expect(page.body).to.include('<script src="stomp.umd.min.js"').and.include('<script src="chat.js" type="module">');
      expect(page.body).not.to.match(/https?:\/\//, 'the page loads nothing from another site');
      const chat = await fetchRaw(port, '/chat.js');
      expect(chat.status).to.equal(200);
      expect(chat.body).to.include('x-resume-after').and.include('x-history');
      const stomp = await fetchRaw(port, '/stomp.umd.min.js');
      expect(stomp.status).to.equal(200);
      expect(stomp.headers['content-type']).to.equal('text/javascript; charset=utf-8');
      expect(stomp.body).to.include('StompJs');
      expect((await fetchRaw(port, '/style.css')).status).to.equal(200);
    });

    it('leaves the operator endpoints and the 404 of other paths as they were', async () => {
      expect((await fetchRaw(port, '/healthz')).status).to.equal(200);
      const other = await fetchRaw(port, '/nothing-here');
      expect(other.status).to.equal(404);
      expect(other.body).to.include('/ws');
    });
  });
});
