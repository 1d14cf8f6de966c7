// Drives the playground page in Debian's headless Chromium (playwright-core) and reports what a person
// would see, as JSON on stdout. The assertions live in test_playground.py.
//
//   node tests/integration/playground_e2e.mjs plan.json
//
// plan.json: {"chromium": "/usr/bin/chromium", "cases": [{"name", "url", "key"?, "prompt", "n"?,
//             "size"?, "screenshot", "progress_screenshot"?, "timeout_ms"?}]}
// "url" may carry the key in its fragment (#key=…); "key", when given, is typed into the key field.
import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const plan = JSON.parse(readFileSync(process.argv[2], 'utf8'));

const browser = await chromium.launch({
  executablePath: plan.chromium || '/usr/bin/chromium',
  headless: true,
  // playwright-core starts Chromium with a fresh temporary profile (--user-data-dir) of its own.
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
});

async function runCase(spec) {
  // The stack's Azurite speaks HTTPS with a throw-away CA: the test (only the test) accepts it.
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  const consoleProblems = [];
  const apiRequests = [];
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    // Chromium logs every non-2xx answer; the API's 4xx/5xx are expected here, and so is the favicon's 404.
    const source = message.location().url || '';
    const answered = /^Failed to load resource: the server responded with a status of/.test(message.text());
    if (answered && (/\/api\/images/.test(source) || /favicon\.ico/.test(source))) return;
    consoleProblems.push(`${message.text()} (${source})`);
  });
  page.on('pageerror', (error) => consoleProblems.push(`pageerror: ${error.message}`));
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (url.pathname.startsWith('/api/images')) {
      const headers = request.headers();
      apiRequests.push({
        method: request.method(),
        path: url.pathname,
        query: url.search,
        prefer: headers.prefer || null,
        has_key_header: Boolean(headers['x-functions-key']),
      });
    }
  });

  const started = Date.now();
  const response = await page.goto(spec.url, { waitUntil: 'load' });
  await page.waitForSelector('html[data-ready="true"]', { timeout: 5000 });
  const pageHeaders = response.headers();
  const afterLoad = await page.evaluate(() => ({
    hash: location.hash,
    key_field: document.getElementById('key').value,
    session_key: sessionStorage.getItem('imagegen.playground.key'),
    sizes: [...document.getElementById('size').options].map((o) => o.value),
    size_visible: !document.getElementById('size').closest('.option').hidden,
  }));

  if (spec.key !== undefined) await page.fill('#key', spec.key);
  await page.fill('#prompt', spec.prompt);
  if (spec.n !== undefined) await page.fill('#n', String(spec.n));
  if (spec.size !== undefined) await page.selectOption('#size', spec.size);
  // Busy while the job runs: note whether the progress indicator ever shows (fast failures hide it at once).
  await page.evaluate(() => {
    const box = document.getElementById('progress-box');
    window.sawProgress = false;
    new MutationObserver(() => {
      if (!box.hidden) window.sawProgress = true;
    }).observe(box, { attributes: true });
  });
  await page.click('#generate');
  if (spec.progress_screenshot) {
    await page.waitForSelector('#progress-box:not([hidden])', { timeout: 5000 });
    await page.screenshot({ path: spec.progress_screenshot });
  }
  await page.waitForFunction(
    () =>
      document.getElementById('generate-form').getAttribute('aria-busy') === 'false' &&
      (!document.getElementById('error').hidden || document.querySelectorAll('#results li').length > 0),
    null,
    { timeout: spec.timeout_ms || 20000 },
  );
  // Wait for the images themselves (decoded) when there are any.
  await page.waitForFunction(
    () => [...document.querySelectorAll('#results img')].every((img) => img.complete),
    null,
    { timeout: 10000 },
  );
  const seen = await page.evaluate(() => {
    const text = (id) => document.getElementById(id).textContent;
    return {
      saw_progress: window.sawProgress,
      error_code: text('error-code'),
      status: text('status'),
      error_visible: !document.getElementById('error').hidden,
      error_title: text('error-title'),
      error_message: text('error-message'),
      error_details: [...document.querySelectorAll('#error-details li')].map((li) => li.textContent),
      invalid_fields: [...document.querySelectorAll('[aria-invalid="true"]')].map((e) => e.id),
      focused: document.activeElement ? document.activeElement.id : null,
      progress_hidden: document.getElementById('progress-box').hidden,
      images: [...document.querySelectorAll('#results figure')].map((figure) => {
        const img = figure.querySelector('img');
        const link = figure.querySelector('figcaption a');
        const time = figure.querySelector('figcaption time');
        return {
          src: img.currentSrc || img.src,
          alt: img.alt,
          natural_width: img.naturalWidth,
          natural_height: img.naturalHeight,
          link_href: link ? link.href : null,
          link_text: link ? link.textContent : null,
          expires_datetime: time ? time.dateTime : null,
          caption: figure.querySelector('figcaption').textContent,
        };
      }),
      job_line: document.getElementById('job-line').textContent,
    };
  });
  await page.screenshot({ path: spec.screenshot, fullPage: true });
  await context.close();
  return {
    name: spec.name,
    elapsed_ms: Date.now() - started,
    page_status: response.status(),
    page_headers: pageHeaders,
    after_load: afterLoad,
    console_problems: consoleProblems,
    api_requests: apiRequests,
    ...seen,
  };
}

const version = browser.version();
const results = [];
try {
  for (const spec of plan.cases) {
    try {
      results.push(await runCase(spec));
    } catch (error) {
      results.push({ name: spec.name, failure: String(error && error.stack ? error.stack : error) });
    }
  }
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify({ browser: version, results }));
