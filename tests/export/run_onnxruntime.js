// Runs exported models in ONNX Runtime for Node and compares their outputs with Model::predict's.
//   node run_onnxruntime.js NODE_MODULES_DIR (FIXTURE_DIR | MODEL.onnx EXPECTED.json)
// For each model, every case of its EXPECTED.json (batch 1 and 7) is fed to one session; the test
// fails unless the session's input and output names are the Keras names and every output element
// satisfies |ort - meshflow| <= 1e-5 * |meshflow| + 1e-6 (float32; the 1e-6 floor covers values
// near zero, where a relative bound means nothing).
'use strict';
const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

const RTOL = 1e-5, ATOL = 1e-6;

function tensorOf(ort, t) {
  if (t.dtype === 'float32') return new ort.Tensor('float32', Float32Array.from(t.data), t.shape);
  if (t.dtype === 'int64') return new ort.Tensor('int64', BigInt64Array.from(t.data.map(BigInt)), t.shape);
  if (t.dtype === 'bool') return new ort.Tensor('bool', Uint8Array.from(t.data), t.shape);
  throw new Error(`unknown dtype ${t.dtype}`);
}

async function checkModel(ort, onnxPath, jsonPath) {
  const doc = JSON.parse(fs.readFileSync(jsonPath, 'utf8'));
  const session = await ort.InferenceSession.create(onnxPath);
  const problems = [];
  const wantIn = doc.cases[0].inputs.map((t) => t.name);
  if (JSON.stringify(session.inputNames) !== JSON.stringify(wantIn))
    problems.push(`input names ${JSON.stringify(session.inputNames)}, expected ${JSON.stringify(wantIn)}`);
  if (JSON.stringify(session.outputNames) !== JSON.stringify(doc.output_names))
    problems.push(`output names ${JSON.stringify(session.outputNames)}, expected ${JSON.stringify(doc.output_names)}`);
  let worst = 0;
  for (const c of doc.cases) {
    const feeds = {};
    for (const t of c.inputs) feeds[t.name] = tensorOf(ort, t);
    const got = await session.run(feeds);
    for (const want of c.outputs) {
      const out = got[want.name];
      if (!out) { problems.push(`batch ${c.batch}: no output '${want.name}'`); continue; }
      if (JSON.stringify(Array.from(out.dims)) !== JSON.stringify(want.shape)) {
        problems.push(`batch ${c.batch}: '${want.name}' has shape [${out.dims}], predict gave [${want.shape}]`);
        continue;
      }
      let bad = 0, first = '';
      for (let i = 0; i < want.data.length; ++i) {
        const a = Number(out.data[i]), b = want.data[i];
        const err = Math.abs(a - b);
        worst = Math.max(worst, err / (Math.abs(b) + ATOL / RTOL));
        if (!(err <= RTOL * Math.abs(b) + ATOL)) {
          if (!bad) first = `element ${i}: onnxruntime ${a}, predict ${b}`;
          ++bad;
        }
      }
      if (bad) problems.push(`batch ${c.batch}: '${want.name}': ${bad} of ${want.data.length} elements differ (${first})`);
    }
  }
  const name = path.basename(onnxPath);
  if (problems.length) {
    console.log(`FAIL ${name}:\n  ${problems.join('\n  ')}`);
    return false;
  }
  console.log(`ok   ${name}: ${doc.cases.map((c) => 'batch ' + c.batch).join(', ')}; ` +
              `max |ort - predict| / (|predict| + 0.1) = ${worst.toExponential(2)} (bound 1e-5)`);
  return true;
}

async function main() {
  const [modulesDir, ...rest] = process.argv.slice(2);
  let ort;
  try {
    ort = createRequire(path.join(path.resolve(modulesDir), 'x.js'))('onnxruntime-node');
  } catch (e) {
    console.log(`skipped: onnxruntime-node cannot be loaded from ${modulesDir}: ${e.message}`);
    process.exit(77);
  }
  let pairs = [];
  if (rest.length === 1) {
    for (const f of fs.readdirSync(rest[0]).sort())
      if (f.endsWith('.json')) pairs.push([path.join(rest[0], f.replace(/\.json$/, '.onnx')), path.join(rest[0], f)]);
  } else if (rest.length === 2) {
    pairs = [[rest[0], rest[1]]];
  }
  if (!pairs.length) { console.log('FAIL: no models to check'); process.exit(1); }
  let ok = true;
  for (const [m, j] of pairs) {
    try {
      ok = (await checkModel(ort, m, j)) && ok;
    } catch (e) {
      console.log(`FAIL ${path.basename(m)}: ${e.message}`);
      ok = false;
    }
  }
  console.log(ok ? `all ${pairs.length} models match Model::predict` : 'some models differ');
  process.exit(ok ? 0 : 1);
}
main();
