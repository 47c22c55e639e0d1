// The exported Fashion-MNIST CNN in a browser: serves browser_page.html, onnxruntime-web and the
// model from 127.0.0.1, opens the page in headless Chromium and compares the classes and
// probabilities it posts back with Model::predict's (the fixture's JSON).
//   node browser_test.js NODE_MODULES_DIR MODEL.onnx IMAGES.json PAGE.html CHROMIUM
// Exit codes: 0 equal, 1 different (or the page failed or hung), 77 skipped (no onnxruntime-web,
// or Chromium could not start in this environment).
'use strict';
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');

const RTOL = 1e-5, ATOL = 1e-6, TIMEOUT_MS = 90000;
const [modulesDir, modelPath, imagesPath, pagePath, chromium] = process.argv.slice(2);
const dist = path.join(modulesDir, 'onnxruntime-web', 'dist');
if (!fs.existsSync(path.join(dist, 'ort.wasm.min.js'))) {
  console.log(`skipped: onnxruntime-web is not installed under ${modulesDir}`);
  process.exit(77);
}
if (!chromium || !fs.existsSync(chromium)) {
  console.log(`skipped: Chromium is not installed (${chromium || 'no path'})`);
  process.exit(77);
}
const expected = JSON.parse(fs.readFileSync(imagesPath, 'utf8'));
const types = {'.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm',
               '.json': 'application/json', '.onnx': 'application/octet-stream'};

let browser = null, profile = null, done = false;
function finish(code, message) {
  if (done) return;
  done = true;
  console.log(message);
  // Chromium's helpers (renderer, zygote, crashpad) write to the profile after the browser process
  // ends: stop the whole process group this test started, then remove the profile, retrying.
  if (browser && browser.pid) {
    try { process.kill(-browser.pid, 'SIGKILL'); } catch (e) { /* already gone */ }
  }
  let tries = 0;
  const leave = () => {
    try {
      if (profile) fs.rmSync(profile, {recursive: true, force: true});
    } catch (e) {
      if (++tries < 20) return setTimeout(leave, 100);
      console.log(`note: could not remove Chromium's profile ${profile}: ${e.message}`);
    }
    process.exit(code);
  };
  setTimeout(leave, 100);
}

function judge(answer) {
  if (answer.error) return finish(1, `FAIL: the page reported an error:\n${answer.error}`);
  const want = expected.probabilities, got = answer.probabilities;
  if (JSON.stringify(answer.dims) !== JSON.stringify(expected.dims))
    return finish(1, `FAIL: the page's output has shape [${answer.dims}], predict gave [${expected.dims}]`);
  let bad = 0, first = '', worst = 0;
  for (let i = 0; i < want.length; ++i) {
    const err = Math.abs(got[i] - want[i]);
    worst = Math.max(worst, err / (Math.abs(want[i]) + ATOL / RTOL));
    if (!(err <= RTOL * Math.abs(want[i]) + ATOL)) {
      if (!bad) first = `element ${i}: browser ${got[i]}, predict ${want[i]}`;
      ++bad;
    }
  }
  console.log(`browser: ${answer.userAgent}`);
  console.log(`classes from the page: ${answer.classes.join(' ')}`);
  console.log(`classes from predict:  ${expected.classes.join(' ')}`);
  if (expected.labels) console.log(`true labels (${expected.source}): ${expected.labels.join(' ')}`);
  if (JSON.stringify(answer.classes) !== JSON.stringify(expected.classes)) return finish(1, 'FAIL: the classes differ');
  if (bad) return finish(1, `FAIL: ${bad} of ${want.length} probabilities differ (${first})`);
  finish(0, `ok: ten images, classes equal, max |browser - predict| / (|predict| + 0.1) = ${worst.toExponential(2)} (bound 1e-5)`);
}

const server = http.createServer((req, res) => {
  const url = req.url.split('?')[0];
  if (req.method === 'POST' && url === '/result') {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => { res.end('ok'); judge(JSON.parse(body)); });
    return;
  }
  let file = null;
  if (url === '/' || url === '/index.html') file = pagePath;
  else if (url === '/model.onnx') file = modelPath;
  else if (url === '/images.json') file = imagesPath;
  else if (url.startsWith('/ort/') && !url.includes('..')) file = path.join(dist, url.slice(5));
  if (!file || !fs.existsSync(file)) { res.statusCode = 404; res.end('not found'); return; }
  res.setHeader('Content-Type', types[path.extname(file)] || 'application/octet-stream');
  fs.createReadStream(file).pipe(res);
});

server.listen(0, '127.0.0.1', () => {
  const url = `http://127.0.0.1:${server.address().port}/`;
  profile = fs.mkdtempSync(path.join(os.tmpdir(), 'meshflow-chromium-'));
  let stderr = '';
  browser = spawn(chromium, ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                             '--no-first-run', '--disable-extensions', `--user-data-dir=${profile}`, url],
                  {stdio: ['ignore', 'ignore', 'pipe'], detached: true,  // its own process group
                   env: {...process.env, TMPDIR: profile}});        // its temporary files go with the profile
  browser.stderr.on('data', (d) => { stderr += d; });
  browser.on('error', (e) => finish(77, `skipped: Chromium could not be started: ${e.message}`));
  browser.on('exit', (code) => finish(77, `skipped: Chromium exited (code ${code}) before the page answered:\n` +
                                          stderr.split('\n').slice(-8).join('\n')));
  setTimeout(() => finish(1, `FAIL: the page did not answer within ${TIMEOUT_MS / 1000} s`), TIMEOUT_MS);
});
