import { accessSync, constants } from 'node:fs';
import puppeteer, { type Browser, type HTTPResponse, type Page } from 'puppeteer-core';

/** Debian's chromium (`.ci/run` installs it); LIFECYCLE_CHROMIUM names another Chromium or Chrome. */
const DEFAULT_CHROMIUM = '/usr/bin/chromium';

/**
 * The system's chromium, headless: puppeteer-core never downloads a browser. A missing one fails
 * the test with what to do, rather than skipping it: the page would go untested without a word.
 */
export function launchChromium(): Promise<Browser> {
  const executablePath = process.env['LIFECYCLE_CHROMIUM'] || DEFAULT_CHROMIUM;
  try {
    accessSync(executablePath, constants.X_OK);
  } catch {
    throw new Error(`no Chromium at ${executablePath}: install Debian's (apt-get install chromium) or set LIFECYCLE_CHROMIUM to the path of a Chromium or Chrome executable`);
  }
  // --no-sandbox: the tests run as root, where Chromium's sandbox refuses to start.
  return puppeteer.launch({ executablePath, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}

/** A response the test expects to fail (a lookup of an unknown customer): its 404 is no problem. */
export type Expected = (url: string) => boolean;

/**
 * A new tab whose problems are collected: errors on its console (a refused script, an exception,
 * a failed resource), uncaught exceptions, requests that fail and answers of 400 or more.
 * `prepare` runs on the tab before the page loads (e.g. a key already entered in the tab).
 */
export async function openTab(
  browser: Browser,
  url: string,
  expected: Expected = () => false,
  prepare?: (tab: Page) => Promise<unknown>,
): Promise<{ tab: Page; problems: string[] }> {
  const tab = await browser.newPage();
  await prepare?.(tab);
  await tab.setViewport({ width: 1400, height: 900 });
  const problems: string[] = [];
  tab.on('console', (message) => {
    if (message.type() === 'error' && !expected(message.location().url ?? '')) problems.push(`console: ${message.text()} (${message.location().url ?? ''})`);
  });
  tab.on('pageerror', (error) => problems.push(`exception: ${error instanceof Error ? error.message : String(error)}`));
  tab.on('requestfailed', (request) => problems.push(`request failed: ${request.url()} ${request.failure()?.errorText ?? ''}`));
  tab.on('response', (response: HTTPResponse) => {
    if (response.status() >= 400 && !expected(response.url())) problems.push(`answer ${response.status()}: ${response.url()}`);
  });
  await tab.goto(url);
  return { tab, problems };
}

/**
 * A picture of the whole page. The heatmap paints only the rows in view (content-visibility), so
 * the viewport is made as tall as the page first.
 */
export async function screenshot(tab: Page, path: `${string}.png`): Promise<void> {
  // Run in the page, as text: the tests compile without the DOM library.
  const height = await tab.evaluate('document.documentElement.scrollHeight');
  await tab.setViewport({ width: 1400, height: Number(height) });
  await tab.evaluate('new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)))');
  await tab.screenshot({ path, fullPage: true });
}
