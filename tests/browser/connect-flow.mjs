// Drives the connect page in headless Chromium: opens the magic link, clicks
// "Connect with ...", lets the OAuth2 server authorise, and waits for the
// confirmation page. Prints one JSON line with what it saw.
// Usage: node connect-flow.mjs <magic-link-url> <screenshot.png> <user-data-dir>
import { chromium } from 'playwright-core';

const [link, screenshot, userDataDir] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const args = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const context = await chromium.launchPersistentContext(userDataDir, { executablePath, args, headless: true });
const result = { steps: [] };
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(20000);
  const opened = await page.goto(link);
  result.steps.push({ page: 'connect', status: opened.status(), heading: await page.textContent('h1') });
  result.status_before = (await page.textContent('#status'))?.trim();
  const button = page.getByRole('button', { name: /Connect with/ });
  result.button = (await button.textContent())?.trim();
  await Promise.all([page.waitForURL(/\/oauth\/callback/), button.click()]);
  result.steps.push({ page: 'callback', url_path: new URL(page.url()).pathname });
  result.heading = (await page.textContent('#heading'))?.trim();
  result.message = (await page.textContent('#message'))?.trim();
  await page.screenshot({ path: screenshot, fullPage: true });
} catch (e) {
  result.error = String(e && e.message ? e.message : e);
} finally {
  await context.close();
}
console.log(JSON.stringify(result));
