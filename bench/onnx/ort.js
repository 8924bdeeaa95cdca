// bench/onnx/ort.js - the ONNX Runtime side of bench/onnx/run.
//
//   node ort.js MODEL THREADS INPUT_NAME SHAPE IN.bin OUT.bin SECONDS
//
// Loads MODEL on the CPU with THREADS intra-op threads (sequential
// execution, one inter-op thread), runs it once on the float32 tensor in
// IN.bin (SHAPE as "1,784") and writes its first output to OUT.bin, then
// runs it for SECONDS and prints {"runs", "seconds", "median_us"} as JSON.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(path.join(__dirname, 'node_modules', 'onnxruntime-node'));

async function main() {
	const [model, threads, inName, shapeArg, inFile, outFile, secs] =
	    process.argv.slice(2);
	const sess = await ort.InferenceSession.create(model, {
		executionProviders: ['cpu'],
		intraOpNumThreads: Number(threads),
		interOpNumThreads: 1,
		executionMode: 'sequential',
		graphOptimizationLevel: 'all',
	});
	const shape = shapeArg.split(',').map(Number);
	const buf = fs.readFileSync(inFile);
	const data = new Float32Array(buf.buffer, buf.byteOffset,
	    buf.byteLength / 4);
	const feeds = { [inName]: new ort.Tensor('float32', data, shape) };
	let out = await sess.run(feeds);
	const y = out[sess.outputNames[0]].data;
	fs.writeFileSync(outFile, Buffer.from(y.buffer, y.byteOffset,
	    y.byteLength));
	for (let i = 0; i < 3; i++)		// warm-up
		out = await sess.run(feeds);
	const lat = [];
	const t0 = process.hrtime.bigint();
	const limit = t0 + BigInt(Math.round(Number(secs) * 1e9));
	let now = t0;
	while (now < limit || lat.length < 5) {
		const a = process.hrtime.bigint();
		out = await sess.run(feeds);
		now = process.hrtime.bigint();
		lat.push(Number(now - a) / 1000);
	}
	lat.sort((p, q) => p - q);
	process.stdout.write(JSON.stringify({
		runs: lat.length,
		seconds: Number(now - t0) / 1e9,
		median_us: lat[lat.length >> 1],
	}) + '\n');
}

main().catch((e) => {
	process.stderr.write('ort.js: ' + (e && e.message ? e.message : e) +
	    '\n');
	process.exit(1);
});
