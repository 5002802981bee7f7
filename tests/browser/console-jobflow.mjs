// Walks the console's job creation flow in headless Chromium: a user of one
// tenant opens Jobs, creates a job (integration, release, name, connection,
// configuration, a simple schedule previewed in words, paused), first
// leaving the name empty to see the error beside it, then opens the job's
// Settings, Sync schedule, Connector info and webhook pages. Every step is
// captured at desktop (1280 px) and phone (390 px) widths. Prints one JSON
// line with what it saw.
// Usage: node console-jobflow.mjs <base-url> <artifact-dir> <user-data-dir>
//        (credentials in FERRY_USER_EMAIL/PASSWORD)
import { walk } from './console-kit.mjs';

await walk(async ({ page, result, capture, click, signIn }) => {

  await signIn(page, process.env.FERRY_USER_EMAIL, process.env.FERRY_USER_PASSWORD);

  await click(page, page.getByRole('link', { name: 'Jobs', exact: true }));
  await click(page, page.getByRole('link', { name: 'Create job' }));
  await capture(page, 'jobnew-integration');
  await page.getByLabel(/shop-sync/).check();
  await click(page, page.getByRole('button', { name: /Next/ }));
  await capture(page, 'jobnew-form');

  // Fill the flow in its order; leave the name empty first.
  await page.getByLabel('Version').selectOption('default');
  await page.getByLabel(/^shop/).selectOption({ index: 1 });
  await page.getByLabel(/^Region/).selectOption('eu');
  await page.getByLabel(/^Batch size/).fill('25');
  await page.getByLabel('Dry run').check();
  await page.getByLabel('web').check();
  await page.getByLabel('Simple: a preset').check();
  await page.getByLabel('Runs', { exact: true }).selectOption('daily');
  await page.getByLabel(/^At/).fill('07:30');
  await page.getByLabel('Timezone of the preset').fill('Europe/Vienna');
  await click(page, page.getByRole('button', { name: 'Preview the schedule' }));
  result.preview_text = await page.locator('.preview').innerText();
  await capture(page, 'jobnew-preview');

  await page.getByLabel('Paused: no scheduled runs until you resume it (run it by hand first)').check();
  await click(page, page.getByRole('button', { name: 'Create job' }));
  result.error_status_path = new URL(page.url()).pathname;
  result.name_error = await page.locator('#name-error').innerText();
  result.batch_kept = await page.getByLabel(/^Batch size/).inputValue();
  await capture(page, 'jobnew-errors');

  // Enter in a field creates the job (not the earlier redraw buttons).
  await page.getByLabel('Job name').fill('Shop orders');
  await Promise.all([
    page.waitForURL((u) => /^\/t\/acme\/jobs\/[0-9a-z]{26}$/.test(u.pathname)),
    page.getByLabel('Job name').press('Enter'),
  ]);
  result.job_path = new URL(page.url()).pathname;
  result.job_text = await page.locator('main').innerText();
  await capture(page, 'jobflow-job');

  await click(page, page.getByRole('link', { name: 'Settings', exact: true }));
  result.settings_text = await page.locator('main').innerText();
  await capture(page, 'jobflow-settings');
  await page.goBack();

  await click(page, page.getByRole('link', { name: 'Sync schedule', exact: true }));
  await capture(page, 'jobflow-schedule');
  await page.goBack();

  await click(page, page.getByRole('link', { name: /^Info/ }).first());
  await capture(page, 'jobflow-connectors');
  await page.goBack();

  await click(page, page.getByRole('button', { name: 'Enable the webhook' }));
  result.webhook_text = await page.locator('main').innerText();
  await capture(page, 'jobflow-webhook');
});
