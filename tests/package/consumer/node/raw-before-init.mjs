// The raw entry used before init: the error must say what to call.
import { BatchProcessor } from 'edgebatch/raw';

try {
  new BatchProcessor();
  console.log(JSON.stringify({ threw: false }));
} catch (err) {
  console.log(JSON.stringify({ threw: true, type: err.constructor.name, message: err.message }));
}
