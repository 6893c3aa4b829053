// The wasm `Limiter` (src/bindings/limiter.rs), which the package's own declarations leave out
// (it is the Worker's, not the library's public API).
export {};

type LimiterGrant = { id: number } | { waitMs: number } | { never: string };

declare module '../pkg/edgebatch.js' {
  export class Limiter {
    constructor(options: object, nowMs: number);
    acquire(owner: string, inputTokens: number, outputTokens: number, nowMs: number, ordered?: boolean): LimiterGrant;
    release(id: number, outcome: object, nowMs: number): boolean;
    stats(nowMs: number): { inFlight: number, concurrency: number, granted: number, expired: number, owners: number, pausedForMs: number };
    free(): void;
    static estimate(provider: string, body: unknown): { inputTokens: number, outputTokens: number };
    static request(provider: { name: string, baseUrl?: string, apiKey?: string, version?: string }): { url: string, headers: Record<string, string> };
    static usage(provider: string, reply: unknown): { inputTokens: number, outputTokens: number } | undefined;
  }
}
