// Walks the console's operations screens in headless Chromium as the
// platform admin: users (list, new user, a user), integrations and an
// integration's releases, API keys (create one: shown once), dead letters.
// Every screen is captured at 1280 and 390 px. Prints one JSON line.
// Usage: node console-ops.mjs <base-url> <artifact-dir> <user-data-dir>
//        (credentials in FERRY_ADMIN_EMAIL/PASSWORD)
import { walk } from './console-kit.mjs';

await walk(async ({ base, page, result, capture, signIn }) => {
  await signIn(page, process.env.FERRY_ADMIN_EMAIL, process.env.FERRY_ADMIN_PASSWORD);
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
});
