// The playground's only script. It talks to the API the way any client does: POST with
// `Prefer: respond-async`, then GET the `Location` after each `Retry-After` until the answer is not 202.
// Everything that comes from the API is written with textContent or as attribute values; never as HTML.
'use strict';

(() => {
  const KEY_STORAGE = 'imagegen.playground.key';
  // The fields with choices, in the order of the API's field table (the page has a control for each).
  const OPTION_FIELDS = ['size', 'quality', 'background', 'output_format'];
  const CUSTOM_SIZE = 'custom';
  const FORM_FIELDS = new Set(['prompt', 'n', ...OPTION_FIELDS]);
  const MAX_POLL_SECONDS = 15 * 60;
  const MAX_POLL_NETWORK_ERRORS = 3;

  const $ = (id) => document.getElementById(id);
  const form = $('generate-form');
  const keyInput = $('key');
  const promptInput = $('prompt');
  const nInput = $('n');
  const generateButton = $('generate');
  const cancelButton = $('cancel');
  const statusLine = $('status');
  const progressBox = $('progress-box');
  const elapsedLine = $('elapsed');
  const errorBox = $('error');
  const results = $('results');

  const config = readConfig();
  const apiBase = typeof config.api_base === 'string' ? config.api_base : '/api';
  let current = null; // {key, location, started}
  let clock = null;

  function readConfig() {
    try {
      const parsed = JSON.parse($('playground-config').textContent || '{}');
      return parsed && typeof parsed === 'object' ? parsed : {};
    } catch {
      return {};
    }
  }

  // --- the function key: pasted, or from the URL fragment; kept in this tab only -------------
  function storedKey() {
    try {
      return sessionStorage.getItem(KEY_STORAGE) || '';
    } catch {
      return '';
    }
  }

  function storeKey(value) {
    try {
      if (value) sessionStorage.setItem(KEY_STORAGE, value);
      else sessionStorage.removeItem(KEY_STORAGE);
    } catch {
      // Storage disabled: the key stays in the field for this page view only.
    }
  }

  function initKey() {
    const fragment = new URLSearchParams(location.hash.slice(1));
    const fromFragment = fragment.get('key');
    if (fromFragment) {
      storeKey(fromFragment.trim());
      fragment.delete('key');
      const rest = fragment.toString();
      // Drop the key from the address bar (and so from history and bookmarks).
      history.replaceState(null, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
    }
    keyInput.value = storedKey();
  }

  // --- options the configured model accepts ---------------------------------------------------
  function initOptions() {
    const model = config.model && typeof config.model === 'object' ? config.model : null;
    if (model && typeof model.name === 'string') {
      $('model-line').textContent = `Model: ${model.name}.`;
    }
    if (model && Number.isInteger(model.max_n)) {
      nInput.max = String(model.max_n);
    }
    for (const field of OPTION_FIELDS) {
      const select = $(field);
      const wrapper = select.closest('.option');
      const option = model && model.options && typeof model.options === 'object' ? model.options[field] : null;
      const values = option && Array.isArray(option.values) ? option.values : [];
      select.replaceChildren();
      if (values.length < 2) {
        // Nothing to choose: the API's default is the only value.
        wrapper.hidden = true;
        select.disabled = true;
        continue;
      }
      const fallback = field === 'size' ? model.default_size : field === 'output_format' ? 'png' : null;
      select.append(new Option(fallback ? `default (${fallback})` : 'model default', ''));
      for (const value of values) {
        if (typeof value === 'string') select.append(new Option(value, value));
      }
    }
    initCustomSize(model);
  }

  // A model with a size rule (gpt-image-2, FLUX) takes any WIDTHxHEIGHT within it, not only presets.
  function initCustomSize(model) {
    const rule = model && model.custom_size && typeof model.custom_size === 'object' ? model.custom_size : null;
    const box = $('custom-size');
    const select = $('size');
    if (!rule || !Number.isInteger(rule.multiple_of) || !Number.isInteger(rule.max_edge)) {
      box.hidden = true;
      return;
    }
    if (select.disabled) {
      select.closest('.option').hidden = false;
      select.disabled = false;
      select.append(new Option(`default (${model.default_size})`, ''));
    }
    select.append(new Option('custom…', CUSTOM_SIZE));
    for (const input of [$('width'), $('height')]) {
      input.step = String(rule.multiple_of);
      input.min = String(Math.max(rule.multiple_of, rule.min_edge || 0));
      input.max = String(rule.max_edge);
    }
    const [width, height] = String(model.default_size || '1024x1024').split('x');
    $('width').value = width;
    $('height').value = height;
    $('custom-size-help').textContent = typeof rule.text === 'string' ? rule.text : '';
    const sync = () => {
      box.hidden = select.value !== CUSTOM_SIZE;
    };
    select.addEventListener('change', sync);
    sync();
  }

  function chosenSize() {
    const select = $('size');
    if (select.value !== CUSTOM_SIZE) return select.value;
    return `${$('width').value.trim()}x${$('height').value.trim()}`;
  }

  // --- status, errors, busy state --------------------------------------------------------------
  function announce(text) {
    statusLine.textContent = text;
  }

  function clearProblems() {
    errorBox.hidden = true;
    $('error-title').textContent = '';
    $('error-message').textContent = '';
    $('error-details').replaceChildren();
    $('error-code').textContent = '';
    for (const element of form.querySelectorAll('[aria-invalid]')) {
      element.removeAttribute('aria-invalid');
      element.removeAttribute('aria-errormessage');
    }
  }

  function showProblem({ title, message = '', details = [], field = null, status = null, code = null }) {
    $('error-title').textContent = title;
    $('error-message').textContent = message;
    $('error-code').textContent = [status ? `HTTP ${status}` : '', code || ''].filter(Boolean).join(' · ');
    const list = $('error-details');
    list.replaceChildren();
    for (const detail of details) {
      const item = document.createElement('li');
      item.textContent = detail;
      list.append(item);
    }
    errorBox.hidden = false;
    announce(''); // the alert speaks; saying it twice would only repeat it
    const control = field && FORM_FIELDS.has(field) ? $(field) : field === 'key' ? keyInput : null;
    if (control) {
      if (control.closest('.option')) control.closest('.option').hidden = false;
      control.disabled = false;
      control.setAttribute('aria-invalid', 'true');
      control.setAttribute('aria-errormessage', 'error');
      control.focus();
    }
  }

  function setBusy(busy) {
    generateButton.disabled = busy;
    form.setAttribute('aria-busy', busy ? 'true' : 'false');
    progressBox.hidden = !busy;
    if (!busy) {
      cancelButton.hidden = true;
      cancelButton.disabled = false;
    }
  }

  function startClock() {
    const started = Date.now();
    elapsedLine.textContent = '0 s';
    clock = setInterval(() => {
      elapsedLine.textContent = `${Math.round((Date.now() - started) / 1000)} s`;
    }, 1000);
    return started;
  }

  function stopClock() {
    if (clock !== null) clearInterval(clock);
    clock = null;
  }

  // --- HTTP helpers ----------------------------------------------------------------------------
  function sameOriginUrl(value) {
    // The key goes with every poll: follow a Location only on this page's own origin.
    if (typeof value !== 'string' || !value) return null;
    try {
      const url = new URL(value, location.href);
      return url.origin === location.origin ? url.href : null;
    } catch {
      return null;
    }
  }

  function safeLink(value) {
    if (typeof value !== 'string') return null;
    try {
      const url = new URL(value);
      return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
    } catch {
      return null;
    }
  }

  function retryAfterSeconds(header, fallback) {
    if (!header) return fallback;
    const seconds = Number(header);
    if (Number.isFinite(seconds)) return Math.min(Math.max(seconds, 0.5), 60);
    const date = Date.parse(header);
    if (Number.isFinite(date)) return Math.min(Math.max((date - Date.now()) / 1000, 0.5), 60);
    return fallback;
  }

  function sleep(seconds) {
    return new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  }

  async function readJson(response) {
    const text = await response.text();
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch {
      return null;
    }
  }

  function call(url, method, key, body) {
    const headers = { 'x-functions-key': key, Accept: 'application/json' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      headers.Prefer = 'respond-async';
    }
    return fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
      redirect: 'error',
    });
  }

  // --- the job -----------------------------------------------------------------------------
  function buildBody() {
    const prompt = promptInput.value;
    if (!prompt.trim()) {
      showProblem({ title: 'Write a prompt first.', message: 'Describe the picture you want.', field: 'prompt' });
      return null;
    }
    const body = { prompt };
    const n = nInput.value.trim();
    if (n !== '') body.n = /^\d+$/.test(n) ? Number(n) : n; // anything else: the API's 400 explains
    for (const field of OPTION_FIELDS) {
      const select = $(field);
      if (!select.disabled && select.value) body[field] = field === 'size' ? chosenSize() : select.value;
    }
    return body;
  }

  function progressText(job) {
    const id = job && typeof job.id === 'string' ? ` ${job.id.slice(0, 8)}` : '';
    if (job && job.status === 'queued') return `Job${id} is queued; a worker will pick it up in a moment…`;
    if (job && job.status === 'running') return `Job${id} is running: Azure OpenAI is drawing…`;
    return `Job${id} accepted…`;
  }

  async function run() {
    clearProblems();
    const key = keyInput.value.trim();
    if (!key) {
      showProblem({
        title: 'Paste a function key first.',
        message: 'Creating images needs a key of this function app.',
        field: 'key',
      });
      return;
    }
    storeKey(key);
    const body = buildBody();
    if (!body) return;

    current = { key, location: null };
    setBusy(true);
    const started = startClock();
    announce('Sending the prompt…');
    try {
      let response = await call(`${apiBase}/images`, 'POST', key, body);
      let job = await readJson(response);
      let networkErrors = 0;
      while (response.status === 202) {
        const next = sameOriginUrl(response.headers.get('Location')) || sameOriginUrl(job && job.urls && job.urls.get);
        if (!next) throw new Error('the API answered 202 without a Location on this site');
        if ((Date.now() - started) / 1000 > MAX_POLL_SECONDS) throw new Error('the job is taking too long');
        current.location = next;
        cancelButton.hidden = false;
        announce(progressText(job));
        await sleep(retryAfterSeconds(response.headers.get('Retry-After'), 2));
        try {
          const answer = await call(next, 'GET', key);
          response = answer;
          job = await readJson(answer);
          networkErrors = 0;
        } catch (error) {
          networkErrors += 1;
          if (networkErrors > MAX_POLL_NETWORK_ERRORS) throw error;
        }
      }
      finish(response, job, (Date.now() - started) / 1000);
    } catch (error) {
      showProblem({
        title: 'Could not reach the function app.',
        message: `${error && error.message ? error.message : error}. Check your connection and try again.`,
      });
    } finally {
      stopClock();
      setBusy(false);
      current = null;
    }
  }

  function categoryLines(categories) {
    if (!categories || typeof categories !== 'object') return [];
    return Object.entries(categories).map(([name, value]) => {
      const label = name.replace(/_/g, ' ');
      const severity = value && typeof value.severity === 'string' ? `, severity ${value.severity}` : '';
      const what = value && value.filtered ? 'filtered' : 'detected';
      return `${label} (${what}${severity})`;
    });
  }

  function finish(response, job, seconds) {
    const status = response.status;
    if (status === 200 && job && job.status === 'succeeded') {
      renderImages(job);
      const count = Array.isArray(job.images) ? job.images.length : 0;
      announce(`Done: ${count} image${count === 1 ? '' : 's'} in ${Math.round(seconds)} s.`);
      return;
    }
    if (status === 401 || status === 403) {
      showProblem({
        title: 'The function key was not accepted.',
        message:
          'Paste a function key (or the host key) of this function app. In Azure: the portal’s App keys ' +
          'page of the function app, or “az functionapp keys list”. On the local stack: .local/stack.json.',
        field: 'key',
        status,
      });
      return;
    }
    const error = (job && job.error) || {};
    const code = typeof error.code === 'string' ? error.code : null;
    const message = typeof error.message === 'string' ? error.message : '';
    const details = error.details && typeof error.details === 'object' ? error.details : {};
    if (code === 'content_filtered') {
      const lines = categoryLines(details.categories);
      if (Array.isArray(details.images)) {
        for (const item of details.images) {
          const index = item && Number.isInteger(item.index) ? item.index + 1 : '?';
          const found = categoryLines(item && item.categories);
          lines.push(`image ${index}: ${found.length ? found.join(', ') : 'withheld'}`);
        }
      }
      showProblem({
        title: 'The content filter blocked this request.',
        message:
          "Azure OpenAI's safety system refused the prompt or withheld an image. " +
          'Rephrase the prompt and try again.' +
          (lines.length ? ' What it found:' : ''),
        details: lines,
        status,
        code,
      });
    } else if (code === 'upstream_throttled') {
      const wait = Math.ceil(retryAfterSeconds(response.headers.get('Retry-After'), 10));
      showProblem({
        title: 'Azure OpenAI is busy right now.',
        message: `The model's rate limit was reached and the app's retries ran out. Try again in ${wait} seconds.`,
        status,
        code,
      });
    } else if (code === 'invalid_request') {
      const field = typeof details.field === 'string' ? details.field : null;
      showProblem({
        title: field ? `Check “${field}”.` : 'The request was not accepted.',
        message,
        details: Array.isArray(details.allowed) ? [`allowed: ${details.allowed.join(', ')}`] : [],
        field,
        status,
        code,
      });
    } else if (code === 'canceled') {
      showProblem({ title: 'The job was canceled.', status, code });
    } else if (code === 'upstream_timeout') {
      showProblem({ title: 'Azure OpenAI took too long.', message, status, code });
    } else if (code === 'upstream_error') {
      showProblem({ title: 'Azure OpenAI failed to draw the image.', message, status, code });
    } else if (code === 'storage_error') {
      showProblem({ title: 'Storage is unavailable right now.', message, status, code });
    } else {
      showProblem({ title: 'The request failed.', message, status, code });
    }
  }

  function formatBytes(bytes) {
    if (!Number.isFinite(bytes)) return '';
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
    return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  }

  function expiryText(value) {
    const expires = new Date(value);
    if (Number.isNaN(expires.getTime())) return null;
    const minutes = Math.round((expires.getTime() - Date.now()) / 60000);
    return { expires, text: `${expires.toLocaleString()} (in ${minutes} min)` };
  }

  function paragraph(...parts) {
    const p = document.createElement('p');
    p.append(...parts);
    return p;
  }

  function renderImages(job) {
    results.replaceChildren();
    const images = Array.isArray(job.images) ? job.images : [];
    const prompt = job.request && typeof job.request.prompt === 'string' ? job.request.prompt : '';
    $('results-empty').hidden = images.length > 0;
    const jobLine = $('job-line');
    jobLine.textContent = `Job ${job.id}. Links are read-only and expire; GET the job again for fresh ones.`;
    jobLine.hidden = false;
    images.forEach((image, index) => {
      const url = safeLink(image && image.url);
      const item = document.createElement('li');
      const figure = document.createElement('figure');
      const picture = document.createElement('img');
      picture.alt = `Image ${index + 1} of ${images.length}${prompt ? `: ${prompt}` : ''}`;
      if (Number.isInteger(image.width) && Number.isInteger(image.height)) {
        picture.width = image.width;
        picture.height = image.height;
      }
      picture.decoding = 'async';
      picture.referrerPolicy = 'no-referrer';
      if (url) picture.src = url;
      const caption = document.createElement('figcaption');
      const link = document.createElement('a');
      link.textContent = `Open image ${index + 1}`;
      if (url) link.href = url;
      link.target = '_blank';
      link.rel = 'noopener noreferrer';
      const format = typeof image.content_type === 'string' ? image.content_type.replace('image/', '').toUpperCase() : '';
      const facts = [`${image.width}×${image.height}`, format, formatBytes(image.bytes)].filter(Boolean).join(' · ');
      caption.append(paragraph(link, ` — ${facts}`));
      const expiry = expiryText(image.expires_at);
      if (expiry) {
        const time = document.createElement('time');
        time.dateTime = expiry.expires.toISOString();
        time.textContent = expiry.text;
        caption.append(paragraph('Link expires ', time));
      }
      if (typeof image.revised_prompt === 'string' && image.revised_prompt) {
        const revised = paragraph(`Revised prompt: ${image.revised_prompt}`);
        revised.className = 'revised';
        caption.append(revised);
      }
      picture.addEventListener('error', () => {
        caption.append(paragraph('This image could not be loaded: the link may have expired.'));
      });
      figure.append(picture, caption);
      item.append(figure);
      results.append(item);
    });
  }

  async function cancel() {
    if (!current || !current.location) return;
    cancelButton.disabled = true;
    announce('Canceling the job…');
    try {
      await call(current.location, 'DELETE', current.key);
    } catch {
      // The next poll tells what happened.
    }
  }

  // --- wiring ------------------------------------------------------------------------------
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!current) run();
  });
  cancelButton.addEventListener('click', cancel);
  $('forget-key').addEventListener('click', () => {
    storeKey('');
    keyInput.value = '';
    keyInput.focus();
    announce('The key was removed from this tab.');
  });
  form.addEventListener('input', (event) => {
    if (event.target && event.target.removeAttribute) {
      event.target.removeAttribute('aria-invalid');
      event.target.removeAttribute('aria-errormessage');
    }
  });

  initKey();
  initOptions();
  document.documentElement.dataset.ready = 'true';
})();
