// Walks the operator console in headless Chromium: the admin signs in and
// sees every tenant on the switcher; a user of one tenant signs in, lands on
// its dashboard, opens a job, runs it and waits for the run page to say it
// succeeded. Every screen is captured at desktop (1280 px) and phone (390 px)
// widths. Prints one JSON line with what it saw.
// Usage: node console-flow.mjs <base-url> <artifact-dir> <user-data-dir>
//        (credentials in FERRY_ADMIN_EMAIL/PASSWORD and FERRY_USER_EMAIL/PASSWORD)
import { walk } from './console-kit.mjs';

await walk(async ({ base, page, result, capture, signIn, signOut }) => {

  await page.goto(`${base}/login`);
  await capture(page, 'sign-in');

  // The platform admin: every tenant on the switcher.
  await signIn(page, process.env.FERRY_ADMIN_EMAIL, process.env.FERRY_ADMIN_PASSWORD);
  result.admin_landed = new URL(page.url()).pathname;
  result.admin_tenants = (await page.locator('main').innerText()).split('\n').filter((l) => /Acme|Globex/.test(l));
  await capture(page, 'tenant-switcher');
  await signOut(page);

  // A user of one tenant lands in its workspace.
  await signIn(page, process.env.FERRY_USER_EMAIL, process.env.FERRY_USER_PASSWORD);
  result.user_landed = new URL(page.url()).pathname;
  result.user_tenant = (await page.getByTestId('tenant-name').textContent())?.trim();
  await capture(page, 'dashboard-empty');

  await page.getByRole('link', { name: 'Jobs', exact: true }).click();
  await capture(page, 'jobs');
  await page.getByRole('link', { name: 'Contacts export' }).click();
  await capture(page, 'job');

  // Run now: the run's page, refreshed until it ends.
  await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Run now' }).click()]);
  result.run_path = new URL(page.url()).pathname;
  for (let i = 0; i < 100; i++) {
    const status = (await page.getByTestId('run-status').textContent())?.trim().toLowerCase();
    if (!['queued', 'running', 'interrupted'].includes(status)) break;
    await page.waitForTimeout(200);
    await page.reload();
  }
  result.run_status = (await page.getByTestId('run-status').textContent())?.trim().toLowerCase();
  result.run_text = await page.locator('main').innerText();
  await capture(page, 'run');

  await page.getByRole('link', { name: 'Activity', exact: true }).click();
  await capture(page, 'activity');
  await page.getByRole('link', { name: 'Dashboard', exact: true }).click();
  result.dashboard_text = await page.locator('main').innerText();
  await capture(page, 'dashboard');

  // Keyboard: the first Tab reaches the skip link, and it is visible when focused.
  await page.keyboard.press('Tab');
  result.first_focus = await page.evaluate(() => document.activeElement?.textContent?.trim());
});
