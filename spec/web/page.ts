/**
 * What both browser specs need of Chromium and of the chat page: the browser (installed by infra/chromium.sh when
 * missing, so a spec fails rather than skips without it) and the lines the page shows.
 */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ROOT } from '../support/cluster.js';

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Debian's Chromium, headless, with a fresh temporary profile. The first run on a machine installs it with apt. */
export async function launchChromium(): Promise<Browser> {
  const { stdout } = await promisify(execFile)(resolve(ROOT, 'infra/chromium.sh'), { timeout: 14 * 60_000 });
  return chromium.launch({ executablePath: stdout.trim(), headless: true, args: CHROMIUM_ARGS });
}

/** A chat line as the page shows it. */
export interface Line {
  readonly id: string;
  readonly nick: string;
  readonly text: string;
}

export async function chatLines(page: Page): Promise<Line[]> {
  return page.$$eval('#messages li.msg', (items) =>
    items.map((li) => ({
      id: (li as HTMLElement).dataset.id ?? '',
      nick: li.querySelector('.nick')?.textContent ?? '',
      text: li.querySelector('.text')?.textContent ?? '',
    })),
  );
}

export async function systemLines(page: Page): Promise<string[]> {
  return page.locator('#messages li.system').allTextContents();
}
