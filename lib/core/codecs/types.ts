/**
 * The codec interface and the layout description every codec carries.
 *
 * A layout says what the bytes are, as BTF would: an integer (`size` bytes, `signed`), plain
 * bytes, an array (`length` elements of `elem`), or a struct (`name`, and each member's
 * `name`, byte `offset` and `layout`). Maps check codecs against their BTF with it.
 */
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
  /** Name shown in errors and layouts ('u32', 'ipv4', the struct's name). */
  readonly name: string;
  /** Encoded size in bytes. */
  readonly size: number;
  /** Alignment in bytes, as the C compiler would align the type. */
  readonly align: number;
  /** The layout description, checked against a map's BTF when a typed map is opened. */
  readonly layout: Layout;
  /** Writes `value` into `buf` at `offset` (`size` bytes); throws `ERR_INVALID_ARGUMENT` on a bad value. */
  encode(value: In, buf: Buffer, offset: number): void;
  /** Reads a value from the `size` bytes of `buf` at `offset`. */
  decode(buf: Buffer, offset: number): T;
}

/** The decoded type of a codec. */
export type Infer<C> = C extends Codec<infer T, any> ? T : never;
/** The type a codec's encode accepts. */
export type InferInput<C> = C extends Codec<any, infer I> ? I : never;
