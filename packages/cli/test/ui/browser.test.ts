/**
 * The console in a real browser: Debian's chromium driven by playwright-core, against the
 * console on the real Redis stores and RabbitMQ. scripts/ensure-chromium.sh installs chromium
 * with apt when it is missing. Under CI=true nothing here skips.
 *
 * BACKTRACK_SCREENSHOTS=1 writes the screenshots to docs/img/ (committed, shown in the READMEs);
 * otherwise they go to a temporary folder.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCI, probeService } from '../../../../test/support/services.js';
import { createWorld, type World } from './world.js';

const CHROMIUM = '/usr/bin/chromium';
const ENSURE = fileURLToPath(new URL('../../scripts/ensure-chromium.sh', import.meta.url));
const DOCS_IMG = fileURLToPath(new URL('../../../../docs/img/', import.meta.url));

function ensureChromium(): boolean {
  if (existsSync(CHROMIUM)) return true;
  try {
    execFileSync('bash', [ENSURE], { stdio: 'inherit', timeout: 600_000 });
  } catch (error) {
    if (isCI()) throw error;
  }
  const ok = existsSync(CHROMIUM);
  if (!ok) console.warn(`\n!!!!!!!!!! SKIPPING console browser tests: no ${CHROMIUM} !!!!!!!!!!\n`);
  return ok;
}

const redisInfo = await probeService('redis');
const rabbitInfo = await probeService('rabbitmq');
const browserReady = redisInfo.available && rabbitInfo.available && ensureChromium();

describe.skipIf(!browserReady)('backtrack ui in chromium', () => {
  let w: World;
  let browser: BrowserContext;
  let page: Page;
  let profile: string;
  let shots: string;

  beforeAll(async () => {
    // 12 reservations published 2 per batch, 250 ms a batch: a progress bar with time to move.
    w = await createWorld(redisInfo, rabbitInfo, { publishDelayMs: 250, batchSize: 2 });
    profile = await mkdtemp(join(tmpdir(), 'bt-ui-chromium-'));
    shots =
      process.env.BACKTRACK_SCREENSHOTS === '1'
        ? DOCS_IMG
        : await mkdtemp(join(tmpdir(), 'bt-ui-shots-'));
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1200, height: 820 },
    });
    page = browser.pages()[0] ?? (await browser.newPage());
    page.setDefaultTimeout(20_000);
  });

  afterAll(async () => {
    await browser?.close();
    await w?.close();
    if (profile) await rm(profile, { recursive: true, force: true });
    if (shots && shots !== DOCS_IMG) await rm(shots, { recursive: true, force: true });
  });

  const confirm = async () => {
    await page.locator('#confirm-yes').click();
  };

  it('a stuck saga appears on the overview; the operator resolves it and sees it compensated', async () => {
    await page.goto(w.url);
    await expect.poll(() => page.locator('#live.on').count()).toBe(1);
    await expect.poll(() => page.locator('#attention').textContent()).toContain('No saga');

    const sagaId = await w.startStuckSaga('order-1042');
    // No reload: the overview arrives through server-sent events.
    const row = page.locator('#attention tr[data-saga-id="order-1042"]');
    // (An update computed while the saga was still compensating may show it so first.)
    await row.locator('[data-status="stuck"]').waitFor();
    await expect.poll(() => page.locator('#count-stuck .n').textContent()).toBe('1');

    await row.locator('a').click();
    await page.locator('#saga-status [data-status="stuck"]').waitFor();
    const timeline = page.locator('#timeline');
    expect(await timeline.locator('tr.stuck').textContent()).toContain('payment provider refused');
    expect(await timeline.textContent()).toContain(`${sagaId}:charge:compensate`);
    await page.screenshot({ path: join(shots, 'console-saga.png'), fullPage: true });

    await page.locator('#operator').fill('alice');
    await page.locator('#operator').dispatchEvent('change');
    await page.locator('#resolve').click(); // no reason yet: refused on the page
    expect(await page.locator('#toast').textContent()).toContain('reason is required');
    await page.locator('#resolve-reason').fill('refunded by hand, ticket 123');
    await page.locator('#resolve').click();
    await confirm();
    await page.locator('#saga-status [data-status="compensated"]').waitFor();
    expect(await timeline.textContent()).toContain(
      'resolved: refunded by hand, ticket 123 (by alice',
    );
    const record = await w.sagaStore.get(sagaId);
    expect(record?.status).toBe('compensated');
  });

  it("a rollback run's progress bar moves to done", async () => {
    const runId = await w.createRun(12);
    await page.goto(`${w.url}/#/runs/${runId}`);
    const bar = page.locator('#run-progress');
    await bar.waitFor();
    expect(await bar.getAttribute('max')).toBe('13');
    expect(await bar.evaluate((el) => (el as unknown as { value: number }).value)).toBe(0);

    const values: number[] = [];
    const sample = setInterval(() => {
      bar
        .evaluate((el) => (el as unknown as { value: number }).value, undefined, { timeout: 500 })
        .then((v) => values.push(v))
        .catch(() => undefined);
    }, 100);
    try {
      await page.locator('#resume').click();
      await confirm();
      await page.locator('#run-status [data-status="completed"]').waitFor({ timeout: 30_000 });
    } finally {
      clearInterval(sample);
    }
    expect(
      await page
        .locator('#run-progress')
        .evaluate((el) => (el as unknown as { value: number }).value),
    ).toBe(13);
    // It moved through values between the start and the end, not straight to done.
    expect(
      values.some((v) => v > 0 && v < 13),
      `sampled ${values.join(',')}`,
    ).toBe(true);
    expect(await page.locator('#run-counts').textContent()).toContain('needs-person');
    expect(w.ctx.recording.sent).toHaveLength(12);
    await page.screenshot({ path: join(shots, 'console-rollback.png'), fullPage: true });
  });

  it('a dead letter is redriven and disappears from the list', async () => {
    w.deadLetter('dl-7');
    w.deadLetter('dl-8');
    await expect.poll(() => w.dlqCount()).toBe(2);
    await page.goto(`${w.url}/#/dead-letters/${w.dlq}`);
    const row = page.locator('#dead-letters tr[data-dead-letter-id="dl-7"]');
    await row.waitFor();
    expect(await row.textContent()).toContain('retries-exhausted');
    await row.locator('button.redrive').click();
    await confirm();
    await row.waitFor({ state: 'detached' });
    await page.locator('#dead-letters tr[data-dead-letter-id="dl-8"]').waitFor();
    await expect.poll(() => w.dlqCount()).toBe(1);
    expect((await w.channel.checkQueue(w.targetQueue)).messageCount).toBe(1);
  });
});
