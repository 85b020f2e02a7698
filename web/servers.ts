/**
 * Which WebSocket URLs the chat page may connect to: its own node, then the fallbacks of `?servers=`.
 *
 * Pure functions with no DOM, so the specs can run them in Node (the root tsconfig compiles this file for them;
 * `tsc -p web` compiles it for the browser).
 *
 * Why fallbacks are limited to the page's own host name: the page sends the user's login and passcode in CONNECT
 * to whichever URL it connects to, and a link can carry any `?servers=`. Followed blindly, a crafted link would
 * hand the credentials (and the conversation) to another site once the page's own node drops the connection.
 * The same host name with another port is allowed, because a cluster's nodes may share a host (the cluster specs
 * and `make cluster` run three nodes on 127.0.0.1), and the scheme must match the page's (`wss` under `https`),
 * so an encrypted page never falls back to clear text.
 */

/** The parts of the page's `location` the filter needs. */
export interface PageLocation {
  /** `http:` or `https:`. */
  readonly protocol: string;
  /** Host name without the port, as `location.hostname` gives it. */
  readonly hostname: string;
  /** Host name and port, as `location.host` gives it. */
  readonly host: string;
}

/** Fallbacks beyond this many are ignored: a round robin over more helps nobody. */
export const MAX_FALLBACKS = 16;

/** `ws:` for a page over `http:`, `wss:` for one over `https:`. */
function socketScheme(page: PageLocation): 'ws:' | 'wss:' {
  return page.protocol === 'https:' ? 'wss:' : 'ws:';
}

/** The page's own node: same host and port as the page, on the node's WebSocket path. */
export function ownServer(page: PageLocation, wsPath: string): string {
  return `${socketScheme(page)}//${page.host}${wsPath}`;
}

/**
 * The accepted fallbacks of a `?servers=` value (comma-separated URLs), normalised, in order: ws(s) URLs whose
 * host name is the page's, with the page's scheme, and no user name or password in them. Anything else is
 * dropped silently: the page still works with its own node.
 */
export function fallbackServers(servers: string | null, page: PageLocation): string[] {
  const scheme = socketScheme(page);
  const accepted: string[] = [];
  for (const text of (servers ?? '').split(',')) {
    const trimmed = text.trim();
    if (trimmed === '') continue;
    let url: URL;
    try {
      url = new URL(trimmed);
    } catch {
      continue;
    }
    if (url.protocol !== scheme || url.hostname !== page.hostname.toLowerCase()) continue;
    if (url.username !== '' || url.password !== '') continue;
    url.hash = '';
    accepted.push(url.href);
    if (accepted.length === MAX_FALLBACKS) break;
  }
  return accepted;
}

/** This node first, then the accepted fallbacks, without repeats. */
export function serverList(page: PageLocation, wsPath: string, servers: string | null): string[] {
  return [...new Set([ownServer(page, wsPath), ...fallbackServers(servers, page)])];
}
