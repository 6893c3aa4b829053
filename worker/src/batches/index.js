// @ts-check
// The one entry of /v1/batches: what the rest of the Worker may use of it. Nothing outside
// this folder imports another file of it.
//   handleBatches   the HTTP routes (routes.js), given an authenticated owner; the
//                   provider-format routes (../anthropic/) call it with their fixed header
//   directoryOf, viewsOf   a token's batch ids and their views, for those routes' lists
//   headerOptions   the `options` those routes' creates take from their edgebatch-options header
//   accountPermits  permits from an upstream account's limiter, for realtime calls
//   consume         the queue handler: work messages and dead-lettered ones (consumer.js)
//   BatchLedger, BatchDirectory, UpstreamLimiter   the Durable Object classes wrangler.toml binds
// Inside, one way down: routes -> intake, idempotency, ledger/directory/limiter RPC;
// consumer -> ledger RPC (claim, commit, unclaim), token budget, limiter RPC (permits.js) and
// the library's executor; ledger -> ledger-sql (state), redelivery (the rule), queues (sends),
// provider-batch (the provider's Batch API, from the alarm) -> provider-batch-sql (its state).
export { accountPermits, directoryOf, handleBatches, headerOptions, viewsOf } from './routes.js';
export { consume } from './consumer.js';
export { BatchLedger } from './ledger.js';
export { BatchDirectory } from './directory.js';
export { UpstreamLimiter } from './limiter.js';
