// The onboarding walk and its failure path in headless Chromium, from an
// empty hub, in EZY's order: the platform admin signs in, creates a tenant on
// the switcher and a user assigned to it; the user signs in and follows the
// dashboard's checklist: a connection profile (to the test's fake CRM), a
// mapping configuration, a job through the creation flow (a simple
// schedule, paused; saved with Enter in its name), a manual run that
// succeeds, un-pausing, an API key. Then the CRM rotates its key (a switch
// the test's fake API offers): a run fails, the failure shows on the
// dashboard and in Activity filtered to failed runs, the run's error-level
// logs say why, the user saves the new key on the connection and reruns the
// failed run, which succeeds. Every screen is captured at 1280 and 390 px;
// with FERRY_UPDATE_SCREENSHOTS=1 the main screens are also written to
// docs/screenshots/ (viewport-sized, so they stay small). Prints one JSON line.
// Usage: node console-onboarding.mjs <base-url> <artifact-dir> <user-data-dir>
//        (FERRY_ADMIN_EMAIL/PASSWORD; FERRY_WALK_* as the Rust test sets them)
import { walk } from './console-kit.mjs';

const env = process.env;
const docsDir = new URL('../../docs/screenshots/', import.meta.url).pathname;
const writeDocs = env.FERRY_UPDATE_SCREENSHOTS === '1';

await walk(async ({ base, page, result, capture, click, submit, signIn, signOut }) => {
  const tenant = env.FERRY_WALK_TENANT;
  const user = { email: env.FERRY_WALK_USER_EMAIL, password: env.FERRY_WALK_USER_PASSWORD };
  const text = async () => (await page.locator('main').innerText());
  const path = () => new URL(page.url()).pathname;
  // A screen for the artifacts, and (when asked) for docs/: the first
  // screenful at each width, or the whole page on the desktop when what
  // matters is further down (a run's logs, the job flow's schedule).
  async function shot(name, docName, { full = false } = {}) {
    await capture(page, `onboard-${name}`);
    if (writeDocs && docName) {
      for (const [width, height, suffix] of [[1280, 800, 'desktop'], [390, 844, 'phone']]) {
        await page.setViewportSize({ width, height });
        await page.screenshot({ path: `${docsDir}${docName}-${suffix}.png`, fullPage: full && suffix === 'desktop' });
      }
      await page.setViewportSize({ width: 1280, height: 800 });
      result.docs = (result.docs ?? 0) + 1;
    }
  }
  async function checklistStep(title) {
    await click(page, page.locator('.checklist').getByRole('link', { name: title, exact: true }));
  }
  async function waitForRunEnd() {
    for (let i = 0; i < 150; i++) {
      const status = (await page.getByTestId('run-status').textContent())?.trim().toLowerCase();
      if (!['queued', 'running', 'interrupted'].includes(status)) return status;
      await page.waitForTimeout(200);
      await page.reload();
    }
    return 'still going';
  }

  // 1. The platform admin: a tenant, then a user assigned to it.
  await signIn(page, env.FERRY_ADMIN_EMAIL, env.FERRY_ADMIN_PASSWORD);
  result.admin_empty = (await text()).includes('No tenants yet');
  await shot('tenants-empty');
  await page.getByLabel('Name', { exact: true }).fill('Acme Corp');
  await page.getByLabel(/^Id/).fill('Not valid!');
  await submit(page, 'Create tenant');
  result.tenant_id_error = (await page.locator('#id-error').innerText()).trim();
  result.tenant_name_kept = await page.getByLabel('Name', { exact: true }).inputValue();
  await shot('tenant-new-error');
  await page.getByLabel(/^Id/).fill(tenant);
  await submit(page, 'Create tenant');
  result.tenant_landed = path();
  result.tenant_header = (await page.getByTestId('tenant-name').textContent())?.trim();

  await checklistStep('Add users');
  await page.getByLabel('Email').fill(user.email);
  await page.getByLabel('Full name').fill('Olga Ops');
  await page.getByLabel('Tenants (ids, separated by commas)').fill(tenant);
  await page.getByLabel('Initial password').fill(user.password);
  await submit(page, 'Create user');
  result.user_page = path();
  await click(page, page.getByRole('banner').getByRole('link', { name: 'Users', exact: true }));
  await shot('users', 'users');
  await signOut(page);

  // 2. The user: one tenant, so straight into its workspace.
  await signIn(page, user.email, user.password);
  result.user_landed = path();
  result.user_tenant = (await page.getByTestId('tenant-name').textContent())?.trim();
  await shot('dashboard-new');

  // 3. The checklist, step by step: a connection profile to the CRM.
  await checklistStep('Create connection profiles');
  await page.getByLabel('Provider').selectOption('other');
  await page.getByLabel('How it signs in').selectOption('api_key');
  await submit(page, 'Continue');
  await page.getByLabel('Name', { exact: true }).fill('Acme CRM');
  await page.getByLabel('Connector name').fill('crm');
  await page.getByLabel('API key').fill(env.FERRY_WALK_CRM_KEY);
  await submit(page, 'Create connection');
  result.connection_path = path();
  await shot('connection', 'connection');

  await page.getByRole('link', { name: 'Dashboard', exact: true }).click();
  await checklistStep('Create mapping configurations');
  await page.getByLabel('Name').fill('Contacts');
  await page.getByLabel('Entity').fill('contact');
  await page.getByLabel('Field mappings').fill('email = {{ record.email | lower }}');
  await submit(page, 'Create mapping');
  result.mapping_path = path();
  await shot('mapping', 'mapping');

  // A job through the creation flow: simple schedule, paused; Enter in the name saves it.
  await page.getByRole('link', { name: 'Dashboard', exact: true }).click();
  await checklistStep('Create a job');
  await page.getByLabel(/contacts-export/).check();
  await click(page, page.getByRole('button', { name: /Next/ }));
  await page.getByLabel(/^crm/).selectOption({ index: 1 });
  await page.getByLabel('Simple: a preset').check();
  await page.getByLabel('Runs', { exact: true }).selectOption('daily');
  // Twelve hours away, so no scheduled run fires during the walk.
  await page.getByLabel(/^At/).fill(`${String((new Date().getUTCHours() + 12) % 24).padStart(2, '0')}:00`);
  await page.getByLabel('Paused: no scheduled runs until you resume it (run it by hand first)').check();
  await click(page, page.getByRole('button', { name: 'Preview the schedule' }));
  result.preview_text = await page.locator('.preview').innerText();
  await shot('job-new', 'job-new', { full: true });
  await page.getByLabel('Job name').fill('Contacts export');
  await Promise.all([
    page.waitForURL((u) => /\/jobs\/[^/]+$/.test(u.pathname) && !u.pathname.endsWith('/jobs/new')),
    page.getByLabel('Job name').press('Enter'),
  ]);
  result.job_path = path();
  result.job_text = await text();

  // Run it now: the run succeeds with its counters.
  await submit(page, 'Run now');
  result.first_run_path = path();
  result.first_run_status = await waitForRunEnd();
  result.first_run_text = await text();

  // Un-pause it, then an API key.
  await page.getByRole('link', { name: 'Contacts export' }).first().click();
  await submit(page, 'Resume');
  result.resumed_text = await text();
  await shot('job', 'job');
  await page.getByRole('link', { name: 'Dashboard', exact: true }).click();
  await checklistStep('Create an API key');
  await page.getByLabel('Name').fill('billing system');
  await page.getByLabel('The API (trigger runs, read results)').check();
  await submit(page, 'Create key');
  result.new_key_prefix = (await page.getByTestId('new-key').inputValue()).slice(0, 7 + tenant.length);
  await page.getByRole('link', { name: 'Dashboard', exact: true }).click();
  const checklist = page.locator('.checklist');
  result.checklist_done = await checklist.locator('li.done').count();
  result.checklist_steps = await checklist.locator('li').count();
  result.onboarded_text = await text();
  await shot('dashboard-onboarded');

  // 4. The failure path: the CRM rotates its key; the next run fails.
  const rotated = await fetch(`${env.FERRY_WALK_CRM_URL}/_rotate`, { method: 'POST' });
  result.rotated = rotated.status;
  await page.getByRole('link', { name: 'Jobs', exact: true }).click();
  await page.getByRole('link', { name: 'Contacts export' }).click();
  await submit(page, 'Run now');
  result.failed_run_path = path();
  result.failed_run_status = await waitForRunEnd();

  await page.getByRole('link', { name: 'Dashboard', exact: true }).click();
  const failedCard = page.locator('.stat', { hasText: 'Failed runs, last 24 hours' });
  result.failed_card = (await failedCard.locator('.stat-value').innerText()).trim();
  result.dashboard_failed_text = await text();
  await shot('dashboard', 'dashboard');
  await click(page, failedCard.getByRole('link'));
  result.activity_url = page.url();
  result.activity_status_filter = await page.getByLabel('Status').inputValue();
  result.activity_rows = await page.locator('main table tbody').innerText();
  await shot('activity', 'activity');
  await click(page, page.locator('main table tbody tr').first().getByRole('link').first());
  result.opened_failed_run = path();
  await page.getByLabel('Level').selectOption('error');
  await submit(page, 'Filter');
  result.error_logs = await page.locator('ol.log').innerText();
  result.error_run_text = await text();
  await shot('run-failed', 'run', { full: true });

  // The fix: the new key on the connection profile (write-only, shown masked).
  await page.getByRole('link', { name: 'Connections', exact: true }).click();
  await shot('connections', 'connections');
  await page.getByRole('link', { name: 'Acme CRM' }).click();
  await page.getByLabel('API key').fill(env.FERRY_WALK_CRM_NEW_KEY);
  await submit(page, 'Save credentials');
  result.fixed_connection_text = await text();

  // Rerun the failed run from its page: it succeeds.
  await page.goto(`${base}${result.failed_run_path}`);
  await submit(page, 'Rerun');
  result.rerun_path = path();
  result.rerun_status = await waitForRunEnd();
  result.rerun_text = await text();
  await shot('run-rerun');

  await page.getByRole('link', { name: 'Dead letters', exact: true }).click();
  await shot('dead-letters', 'dead-letters');
});
