// The part of the Workers runtime's types the Worker's code uses (a minimal stand-in for
// @cloudflare/workers-types, which this repository does not install). Checked by
// worker/tsconfig.json; nothing here is emitted.

declare module 'cloudflare:workers' {
  export abstract class DurableObject<Env = unknown> {
    protected ctx: DurableObjectState;
    protected env: Env;
    constructor(ctx: DurableObjectState, env: Env);
    alarm?(): void | Promise<void>;
  }
}

declare module '*.wasm' {
  const module: WebAssembly.Module;
  export default module;
}

interface SqlStorageCursor<T = Record<string, any>> extends Iterable<T> {
  toArray(): T[];
  one(): T;
  next(): IteratorResult<T>;
  readonly rowsRead: number;
  readonly rowsWritten: number;
}

interface SqlStorage {
  exec<T = Record<string, any>>(query: string, ...bindings: unknown[]): SqlStorageCursor<T>;
  readonly databaseSize: number;
}

interface DurableObjectStorage {
  get<T = unknown>(key: string): Promise<T | undefined>;
  put<T>(key: string, value: T): Promise<void>;
  delete(key: string): Promise<boolean>;
  deleteAll(): Promise<void>;
  getAlarm(): Promise<number | null>;
  setAlarm(scheduledTime: number | Date): Promise<void>;
  deleteAlarm(): Promise<void>;
  transactionSync<T>(closure: () => T): T;
  transaction<T>(closure: (txn: DurableObjectStorage) => Promise<T>): Promise<T>;
  readonly sql: SqlStorage;
}

interface DurableObjectId {
  toString(): string;
  equals(other: DurableObjectId): boolean;
  readonly name?: string;
}

interface DurableObjectState {
  readonly id: DurableObjectId;
  readonly storage: DurableObjectStorage;
  blockConcurrencyWhile<T>(callback: () => Promise<T>): Promise<T>;
  waitUntil(promise: Promise<unknown>): void;
  abort(reason?: unknown): void;
}

interface DurableObjectNamespace {
  idFromName(name: string): DurableObjectId;
  idFromString(id: string): DurableObjectId;
  newUniqueId(): DurableObjectId;
  /** A stub: RPC methods of the object's class, untyped here. */
  get(id: DurableObjectId): any;
}

interface Queue<Body = unknown> {
  send(body: Body, options?: { delaySeconds?: number }): Promise<void>;
  sendBatch(messages: Iterable<{ body: Body, delaySeconds?: number }>, options?: { delaySeconds?: number }): Promise<void>;
}

interface Message<Body = unknown> {
  readonly id: string;
  readonly timestamp: Date;
  readonly body: Body;
  readonly attempts: number;
  ack(): void;
  retry(options?: { delaySeconds?: number }): void;
}

interface MessageBatch<Body = unknown> {
  readonly queue: string;
  readonly messages: readonly Message<Body>[];
  ackAll(): void;
  retryAll(options?: { delaySeconds?: number }): void;
}

interface ExecutionContext {
  waitUntil(promise: Promise<unknown>): void;
  passThroughOnException(): void;
}

type SqlStorageValue = ArrayBuffer | string | number | null;

interface MessageSendRequest<Body = unknown> {
  body: Body;
  delaySeconds?: number;
}

interface DigestStream extends WritableStream<ArrayBuffer | ArrayBufferView> {
  readonly digest: Promise<ArrayBuffer>;
}

interface Crypto {
  DigestStream: { new (algorithm: string | { name: string }): DigestStream };
}
