import { readFileSync } from 'node:fs';

/** The name in the CONNECTED frame's `server` header (`stompede/<version>`), in metrics and in logs. */
export const SERVER_NAME = 'stompede';

/**
 * The version of package.json, read once at load so that a release changes one file. The path is relative to the
 * compiled module, dist/broker/version.js, two folders below the root; package.json ships in every npm package, so
 * an installed copy finds it there too.
 */
export const SERVER_VERSION: string = readPackageVersion(new URL('../../package.json', import.meta.url));

function readPackageVersion(file: URL): string {
  const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
  if (typeof parsed === 'object' && parsed !== null && 'version' in parsed && typeof parsed.version === 'string') return parsed.version;
  throw new TypeError(`no "version" string in ${file.pathname}`);
}
