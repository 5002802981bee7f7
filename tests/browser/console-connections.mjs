// Walks the connection-profile and mapping screens in headless Chromium: a
// user of one tenant creates a connection profile for a catalogue provider,
// is told beside the field that Max Concurrent is out of range, fixes it,
// issues a magic link and opens the disconnect confirmation; then creates a
// mapping configuration, sees a problem on its line, and fixes it. Every
// screen is captured at 1280 and 390 px. Prints one JSON line.
// Usage: node console-connections.mjs <base-url> <artifact-dir> <user-data-dir>
//        (credentials in FERRY_USER_EMAIL/PASSWORD)
import { walk } from './console-kit.mjs';

await walk(async ({ page, result, capture, submit, signIn }) => {
  await signIn(page, process.env.FERRY_USER_EMAIL, process.env.FERRY_USER_PASSWORD);

  await page.getByRole('link', { name: 'Connections', exact: true }).click();
  await capture(page, 'connections-empty');
  await page.getByRole('link', { name: 'New connection' }).click();
  await capture(page, 'connection-choose');
  await page.getByLabel('Provider').selectOption('stripe');
  await submit(page, 'Continue');
  await page.getByLabel('Name').fill('Stripe live');
  await page.getByLabel('Token').fill('sk_test_console_browser_secret');
  await page.getByLabel(/Max Concurrent/).fill('100');
  await submit(page, 'Create connection');
  result.max_error = (await page.locator('#max_concurrent-error').textContent())?.trim();
  result.kept_name = await page.getByLabel('Name').inputValue();
  await capture(page, 'connection-new-error');
  await page.getByLabel('Token').fill('sk_test_console_browser_secret');
  await page.getByLabel(/Max Concurrent/).fill('8');
  await submit(page, 'Create connection');
  result.connection_path = new URL(page.url()).pathname;
  await submit(page, 'Issue a new link');
  result.link = await page.getByLabel('Link for the customer').inputValue();
  result.connection_text = await page.locator('main').innerText();
  await capture(page, 'connection');
  await page.getByRole('link', { name: 'Disconnect…' }).click();
  await capture(page, 'connection-disconnect');
  await page.getByRole('link', { name: 'Connections', exact: true }).click();
  await capture(page, 'connections');

  await page.getByRole('link', { name: 'Mappings', exact: true }).click();
  await capture(page, 'mappings-empty');
  await page.getByRole('link', { name: 'New mapping' }).click();
  await page.getByLabel('Name').fill('Contacts');
  await page.getByLabel('Entity').fill('contact');
  await page.getByLabel('Field mappings').fill('email = {{ record.email | lower }}\nphone = {{ record.phone }');
  await submit(page, 'Create mapping');
  result.line_problems = await page.locator('.line-problems').innerText();
  await capture(page, 'mapping-error');
  await page.getByLabel('Field mappings').fill('email = {{ record.email | lower }}\nphone = {"from": "phone"}');
  await submit(page, 'Create mapping');
  result.mapping_path = new URL(page.url()).pathname;
  await capture(page, 'mapping');
  await page.getByRole('link', { name: 'Mappings', exact: true }).click();
  await capture(page, 'mappings');
});
