/** Traffic in a lab: ping results, UDP senders and sinks, TCP listeners. */
import { BpfkitError } from '../core/errors.js';
import type { LabProcess, LabProcessExit } from './procs.js';

/** Result of {@link LabHost.ping}. */
export interface PingResult {
  /** Echo requests sent. */
  sent: number;
  /** Replies received in time. */
  received: number;
  /** Round-trip times of the received replies, in ms, in sequence order. */
  rttMs: number[];
}

/** Options for {@link LabHost.ping}. */
export interface PingOptions {
  /** Echo requests to send. Default 3. */
  count?: number;
  /** Gap between requests. Default 100 ms. */
  intervalMs?: number;
  /**
   * Overall limit for the whole ping, sends included; replies arriving later are not
   * counted. Default `count * intervalMs + 1000`.
   */
  timeoutMs?: number;
  /** Source address to bind. */
  src?: string;
  /** ICMP payload size in bytes (rounded down to a multiple of 16, min 16). Default 48. */
  size?: number;
}

/** Payload(s) for {@link LabHost.sendUdp}. */
export type UdpPayload = Buffer | string | ReadonlyArray<Buffer | string> | ((seq: number) => Buffer | string);

/** Options for {@link LabHost.sendUdp}. */
export interface SendUdpOptions {
  /** Number of datagrams. */
  count: number;
  /**
   * A fixed payload, a list used round-robin, or a function of the 0-based sequence number.
   * Default: {@link defaultUdpPayload} (`'bpfkit-lab udp <seq>'`). Strings are UTF-8.
   */
  payload?: UdpPayload;
  /** Source address to bind. */
  src?: string;
  /** Source port to bind. */
  sport?: number;
  /** Gap between datagrams. Default 0 (as fast as the socket takes them). */
  intervalMs?: number;
  /** Limit for the whole send. Default `count * intervalMs + 30000`. */
  timeoutMs?: number;
}

/** Result of {@link LabHost.sendUdp}. */
export interface SendUdpResult {
  /** Datagrams the kernel accepted. */
  sent: number;
  /** Datagrams whose send failed (e.g. EPERM from a netfilter drop, ENETUNREACH). */
  failed: number;
  /** The first failed send's error, if any. */
  firstError?: string;
}

/** A received datagram. */
export interface UdpDatagram {
  /** The payload, byte for byte. */
  payload: Buffer;
  /** The sender's address and port. */
  from: { address: string; port: number };
}

/** Options for {@link LabHost.udpSink}. */
export interface UdpSinkOptions {
  /** How many datagrams to keep for {@link UdpSink.payloads}; later ones are only counted. Default 10 000. */
  keep?: number;
  /** How long to wait for the socket to be bound. Default 10 000 ms. */
  readyTimeoutMs?: number;
}

/** The default payload of datagram `seq` sent by {@link LabHost.sendUdp}. */
export function defaultUdpPayload(seq: number): string {
  return `bpfkit-lab udp ${seq}`;
}

/** Wait until `get() >= n` or the process dies or `timeoutMs` passes; resolves with get(). */
function waitCount(proc: LabProcess, get: () => number, n: number, timeoutMs: number, what: string): Promise<number> {
  if (get() >= n) return Promise.resolve(get());
  return new Promise<number>((resolve, reject) => {
    let done = false;
    const finish = (fn: () => void): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      off();
      fn();
    };
    const off = proc.onLine(() => {
      if (get() >= n) finish(() => resolve(get()));
    });
    const timer = setTimeout(() => finish(() => resolve(get())), timeoutMs);
    void proc.exited.then((exit: LabProcessExit) =>
      setImmediate(() => {
        if (get() >= n) finish(() => resolve(get()));
        else finish(() => reject(new BpfkitError('ERR_CLOSED', `${what} stopped (code ${exit.code}, signal ${exit.signal}): ${proc.stderr().trim()}`)));
      }),
    );
  });
}

/** A UDP receiver running in a lab namespace; see {@link LabHost.udpSink}. */
export class UdpSink {
  /** Bound port (the real one when 0 was requested). */
  port = 0;
  /** Bound address. */
  readonly bind: string;
  /** The helper process. */
  readonly process: LabProcess;
  #count = 0;
  #kept: UdpDatagram[] = [];

  /** @internal */
  constructor(proc: LabProcess, bind: string) {
    this.process = proc;
    this.bind = bind;
    proc.onLine((line) => {
      if (line.startsWith('D ')) {
        const [, n, address, port, hex] = line.split(' ');
        this.#count = Math.max(this.#count, Number(n));
        this.#kept.push({ payload: Buffer.from(hex ?? '', 'hex'), from: { address: address ?? '', port: Number(port) } });
      } else if (line.startsWith('N ')) {
        this.#count = Math.max(this.#count, Number(line.slice(2)));
      }
    });
  }

  /** Datagrams received so far (all of them, not only the kept ones). */
  received(): number {
    return this.#count;
  }

  /** Payloads of the first `keep` (default 10 000) datagrams, in arrival order. */
  payloads(): Buffer[] {
    return this.#kept.map((d) => d.payload);
  }

  /** The first `keep` datagrams with their source address/port. */
  datagrams(): UdpDatagram[] {
    return [...this.#kept];
  }

  /**
   * Wait until at least `n` datagrams arrived. Resolves with the count reached, which is
   * below `n` if `timeoutMs` (default 5000) passed first; it does not reject on timeout,
   * so `expect(await sink.waitFor(100)).toBe(100)` reads well and `waitFor(1, 500)` can
   * assert that nothing arrives. Rejects if the sink process died.
   */
  waitFor(n: number, timeoutMs = 5_000): Promise<number> {
    return waitCount(this.process, () => this.#count, n, timeoutMs, 'udp sink');
  }

  /** Stop the receiver. Idempotent. */
  async close(): Promise<void> {
    await this.process.kill('SIGTERM', 500);
  }
}

/** A TCP listener running in a lab namespace; see {@link LabHost.tcpListen}. */
export class TcpListener {
  /** Listening port (the real one when 0 was requested). */
  port = 0;
  /** The helper process. */
  readonly process: LabProcess;
  #accepted = 0;

  /** @internal */
  constructor(proc: LabProcess) {
    this.process = proc;
    proc.onLine((line) => {
      if (line.startsWith('A ')) this.#accepted = Math.max(this.#accepted, Number(line.split(' ')[1]));
    });
  }

  /** Connections accepted so far. */
  accepted(): number {
    return this.#accepted;
  }

  /** Like {@link UdpSink.waitFor}, for accepted connections. */
  waitForAccepted(n: number, timeoutMs = 5_000): Promise<number> {
    return waitCount(this.process, () => this.#accepted, n, timeoutMs, 'tcp listener');
  }

  /** Stop listening. Idempotent. */
  async close(): Promise<void> {
    await this.process.kill('SIGTERM', 500);
  }
}
