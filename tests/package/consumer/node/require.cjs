// A CommonJS user (Node >= 20.19: require of an ES module without top-level await).
const { BatchProcessor } = require('edgebatch');

new BatchProcessor({ concurrency: 2 })
  .map([1, 2, 3], async (n) => n * 10)
  .then((results) => console.log(JSON.stringify(results.map((r) => r.value))));
