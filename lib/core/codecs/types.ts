/** The codec interface and the layout description every codec carries. */
export type Layout =
  | { kind: 'int'; size: number; signed: boolean }
  | { kind: 'bytes'; size: number }
  | { kind: 'array'; size: number; length: number; elem: Layout }
  | { kind: 'struct'; size: number; name: string; members: { name: string; offset: number; layout: Layout }[] };

/**
 * `T` is what decode returns; `In` is what encode accepts (defaults to `T`). They differ only
 * where encode is lenient: u64/i64 take safe-integer numbers, lpmKey takes CIDR strings,
 * bytes takes any Uint8Array, struct padding fields are optional.
 */
export interface Codec<T, In = T> {
  readonly name: string;
  readonly size: number;
  readonly align: number;
  readonly layout: Layout;
  encode(value: In, buf: Buffer, offset: number): void;
  decode(buf: Buffer, offset: number): T;
}

/** The decoded type of a codec. */
export type Infer<C> = C extends Codec<infer T, any> ? T : never;
/** The type a codec's encode accepts. */
export type InferInput<C> = C extends Codec<any, infer I> ? I : never;
