/**
 * The settings tables of docs/configuration.md, generated from the schema (broker/settings.ts). Each docs section
 * sits between `<!-- settings:<section> -->` and `<!-- /settings:<section> -->`; the prose around them is written
 * by hand. `npm run docs:config` rewrites the tables; spec/ops/docs.spec.ts fails when they are out of date.
 */
import { envName, flagName } from './config.js';
import { SECTIONS, SETTINGS, type SectionId } from './settings.js';

const HEADER = '| key | meaning | default | environment | flag | example |\n|---|---|---|---|---|---|';

/** One section's table, one row per setting in schema order. */
export function settingsTable(section: SectionId): string {
  const rows = Object.entries(SETTINGS)
    .filter(([, s]) => s.section === section)
    .map(([key, s]) => {
      const meaning = s.details === undefined ? s.help : `${s.help} ${s.details}`;
      const cells = [
        `\`${key}\``,
        meaning,
        `\`${JSON.stringify(s.default)}\``,
        `\`${envName(key)}\``,
        `\`--${flagName(key)}\``,
        `\`${s.example}\``,
      ];
      return `| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`;
    });
  return [HEADER, ...rows].join('\n');
}

const open = (section: string) => `<!-- settings:${section} -->`;
const close = (section: string) => `<!-- /settings:${section} -->`;

/**
 * `markdown` with every section's table replaced by the generated one. Throws when a section has no markers, so
 * a new section cannot go undocumented either.
 */
export function withSettingsTables(markdown: string): string {
  let out = markdown;
  for (const section of Object.keys(SECTIONS) as SectionId[]) {
    const start = out.indexOf(open(section));
    const end = out.indexOf(close(section));
    if (start === -1 || end < start)
      throw new Error(`docs/configuration.md: no "${open(section)}" … "${close(section)}" markers for ${SECTIONS[section]}`);
    out = `${out.slice(0, start)}${open(section)}\n${settingsTable(section)}\n${out.slice(end)}`;
  }
  return out;
}
