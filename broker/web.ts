/**
 * The chat page on the WebSocket port: `GET /` and the few static files next to it, from `dist/web/` (built
 * from `web/` by `make build`, with `@stomp/stompjs` copied in, so the page needs nothing from the Internet),
 * and `GET /chat/config.json`, what the page must know of this node before it connects.
 */
import { createReadStream, statSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { urlPath, type HttpHandler } from './transports/listen.js';

/** `dist/web/`, next to `dist/broker/` where this module runs from. */
export const WEB_ROOT = fileURLToPath(new URL('../web/', import.meta.url));

/** The only files served: by extension. Anything else (`.ts`, `.d.ts`, dotfiles) is not this handler's. */
const CONTENT_TYPES: Readonly<Record<string, string>> = Object.freeze({
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
});

/**
 * One path segment, not hidden: no `/`, `\`, `..` or NUL can get through, so a name always stays inside
 * the root (the files are flat).
 */
const FILE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

/** The page allows scripts and styles from its own node only, and WebSockets to any node (fallbacks). */
const PAGE_POLICY =
  "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** The file a request path names (`/` is `index.html`), or undefined when it names none that could be served. */
export function webFileName(url: string | undefined): string | undefined {
  const path = urlPath(url);
  if (path === '/') return 'index.html';
  let name: string;
  try {
    name = decodeURIComponent(path.slice(1));
  } catch {
    return undefined;
  }
  if (!FILE_NAME.test(name) || CONTENT_TYPES[extname(name)] === undefined) return undefined;
  return name;
}

function isGetOrHead(request: IncomingMessage): boolean {
  return request.method === 'GET' || request.method === 'HEAD';
}

/** What the page reads before connecting: where the WebSocket endpoint is, and whether to ask for credentials. */
export interface ChatConfig {
  /** The node's `wsPath`: the page connects to `ws(s)://<its own host:port><wsPath>`. */
  readonly wsPath: string;
  /** True when CONNECT needs a login and passcode: the page shows a login form first. */
  readonly login: boolean;
}

/** The page asks for it by a relative URL (`chat/config.json`), so it is found behind a proxy's path prefix too. */
export const CHAT_CONFIG_PATH = '/chat/config.json';

/** `GET /chat/config.json`: `config()` as JSON, never cached (the node may be restarted with other settings). */
export function chatConfigHandler(config: () => ChatConfig): HttpHandler {
  return (request, response) => {
    if (urlPath(request.url) !== CHAT_CONFIG_PATH) return false;
    if (!isGetOrHead(request)) {
      response
        .writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' })
        .end(`${request.method ?? ''} is not allowed here: GET or HEAD only.\n`);
      return true;
    }
    const { wsPath, login } = config();
    const body = JSON.stringify({ wsPath, login }) + '\n';
    response.writeHead(200, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
    });
    response.end(request.method === 'HEAD' ? undefined : body);
    return true;
  };
}

/**
 * Serves the files of `root` (default `dist/web/`). Paths that name no file there fall through (false), so the
 * listener's 404 answers them; other methods than GET and HEAD get 405 on the page's files.
 */
export function webPageHandler(root: string = WEB_ROOT): HttpHandler {
  return (request, response) => {
    const name = webFileName(request.url);
    if (name === undefined) return false;
    const file = join(root, name);
    let size: number;
    let modified: Date;
    try {
      const stat = statSync(file);
      if (!stat.isFile()) return false;
      size = stat.size;
      modified = stat.mtime;
    } catch {
      if (name !== 'index.html') return false;
      response
        .writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' })
        .end(`The chat page is not built (no ${file}): run \`make build\`.\n`);
      return true;
    }
    if (!isGetOrHead(request)) {
      response
        .writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' })
        .end(`${request.method ?? ''} is not allowed here: GET or HEAD only.\n`);
      return true;
    }
    const contentType = CONTENT_TYPES[extname(name)] ?? 'application/octet-stream';
    const headers: Record<string, string | number> = {
      'content-type': contentType,
      'content-length': size,
      'last-modified': modified.toUTCString(),
      // Revalidate every time: a rebuilt page shows at once; the files are small.
      'cache-control': 'no-cache',
      'x-content-type-options': 'nosniff',
    };
    if (name.endsWith('.html')) {
      headers['content-security-policy'] = PAGE_POLICY;
      headers['referrer-policy'] = 'no-referrer';
    }
    response.writeHead(200, headers);
    if (request.method === 'HEAD') {
      response.end();
      return true;
    }
    const stream = createReadStream(file);
    stream.on('error', () => response.destroy());
    stream.pipe(response);
    return true;
  };
}
