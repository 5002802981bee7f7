// What every console walk shares: Chromium launched headless with a profile
// of its own, the page (20 s per step), CSP violations collected from its
// console, screenshots at desktop (1280 px) and phone (390 px) widths with
// sideways scroll measured, and the one JSON line the Rust test reads.
// Usage from a walk: node console-<walk>.mjs <base-url> <artifact-dir> <user-data-dir>
import { chromium } from 'playwright-core';

export async function walk(steps) {
  const [base, artifacts, userDataDir] = process.argv.slice(2);
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    headless: true,
    viewport: { width: 1280, height: 800 },
  });
  const result = { screens: [], csp_violations: [] };

  // Both widths of the page as it is now; a page wider than the phone's
  // screen scrolls sideways, which is noted.
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

  // Clicks what loads a page (a link or a form's button) and waits for it.
  async function click(page, locator) {
    await Promise.all([page.waitForLoadState('load'), locator.click()]);
  }

  async function submit(page, button) {
    await click(page, page.getByRole('button', { name: button, exact: true }));
  }

  async function signIn(page, email, password) {
    await page.goto(`${base}/login`);
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(password);
    await submit(page, 'Sign in');
  }

  async function signOut(page) {
    await Promise.all([page.waitForURL(/\/login/), page.getByRole('button', { name: 'Sign out' }).click()]);
  }

  try {
    const page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(20000);
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) result.csp_violations.push(m.text());
    });
    await steps({ base, page, result, capture, click, submit, signIn, signOut });
  } catch (e) {
    result.error = String(e && e.message ? e.message : e);
  } finally {
    await context.close();
  }
  console.log(JSON.stringify(result));
}
