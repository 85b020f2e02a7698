#!/usr/bin/env node
/**
 * `npm run docs:config`: rewrites the settings tables of docs/configuration.md from the schema (a maintainer's
 * tool, run after adding or changing a setting; spec/ops/docs.spec.ts checks the result).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { withSettingsTables } from '../broker/config-docs.js';

const file = fileURLToPath(new URL('../../docs/configuration.md', import.meta.url));
const before = readFileSync(file, 'utf8');
const after = withSettingsTables(before);
if (after !== before) writeFileSync(file, after);
process.stdout.write(`${file}: ${after === before ? 'settings tables already up to date' : 'settings tables regenerated'}\n`);
