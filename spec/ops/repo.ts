import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, from the compiled spec in dist/spec/ops/. */
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** The built CLI. */
export const CLI = join(REPO, 'dist/bin/stompede.js');
