// Walks the console's operations screens in headless Chromium as the
// platform admin: users (list, new user, a user), integrations and an
// integration's releases, API keys (create one: shown once), dead letters.
// Every screen is captured at 1280 and 390 px. Prints one JSON line.
// Usage: node console-ops.mjs <base-url> <artifact-dir> <user-data-dir>
//        (credentials in FERRY_ADMIN_EMAIL/PASSWORD)
import { chromium } from 'playwright-core';

const [base, artifacts, userDataDir] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const args = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath, args, headless: true, viewport: { width: 1280, height: 800 },
});
const result = { screens: [], csp_violations: [] };

async function capture(page, name) {
  for (const [width, suffix] of [[1280, 'desktop'], [390, 'phone']]) {
    await page.setViewportSize({ width, height: 800 });
    await page.screenshot({ path: `${artifacts}/console-${name}-${suffix}.png`, fullPage: true });
  }
  await page.setViewportSize({ width: 390, height: 800 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  await page.setViewportSize({ width: 1280, height: 800 });
  result.screens.push({ name, title: await page.title(), phone_overflow_px: overflow });
}

try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(20000);
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) result.csp_violations.push(m.text());
  });
  await page.goto(`${base}/login`);
  await page.getByLabel('Email').fill(process.env.FERRY_ADMIN_EMAIL);
  await page.getByLabel('Password').fill(process.env.FERRY_ADMIN_PASSWORD);
  await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Sign in' }).click()]);
  await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Open Acme Corp' }).click()]);

  await page.goto(`${base}/admin/users`);
  await capture(page, 'users');
  await page.getByRole('link', { name: 'New user' }).click();
  await page.getByLabel('Email').fill('olga@acme.example');
  await page.getByLabel('Full name').fill('Olga Ops');
  await page.getByLabel('Tenants (ids, separated by commas)').fill('acme');
  await page.getByLabel('Initial password').fill('short');
  await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Create user' }).click()]);
  await capture(page, 'user-new-error');
  await page.getByLabel('Initial password').fill('a long user passphrase');
  await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Create user' }).click()]);
  result.user_page = new URL(page.url()).pathname;
  await capture(page, 'user');

  await page.goto(`${base}/t/acme/integrations`);
  await capture(page, 'integrations');
  await page.getByRole('link', { name: 'contacts-export' }).click();
  await capture(page, 'integration');

  await page.getByRole('link', { name: 'API keys', exact: true }).click();
  await capture(page, 'api-keys-empty');
  await page.getByLabel('Name').fill('billing system');
  await page.getByLabel('The API (trigger runs, read results)').check();
  await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Create key' }).click()]);
  result.new_key = (await page.getByTestId('new-key').inputValue()).slice(0, 11);
  await capture(page, 'api-key-created');
  await page.getByRole('link', { name: 'Done: back to the API keys' }).click();
  await capture(page, 'api-keys');

  await page.getByRole('link', { name: 'Dead letters', exact: true }).click();
  result.dead_letters_text = await page.locator('main').innerText();
  await capture(page, 'dead-letters-empty');
  await page.getByRole('link', { name: 'Dashboard', exact: true }).click();
  result.dashboard_text = await page.locator('main').innerText();
  await capture(page, 'dashboard-ops');
} catch (e) {
  result.error = String(e && e.message ? e.message : e);
} finally {
  await context.close();
}
console.log(JSON.stringify(result));
