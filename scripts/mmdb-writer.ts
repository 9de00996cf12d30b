/**
 * A small writer for MaxMind DB files (format 2.0), for test fixtures only.
 *
 * The format (https://maxmind.github.io/MaxMind-DB/) is: a binary search tree over the
 * address bits, each node two records (left = bit 0, right = bit 1) of 24, 28 or 32 bits;
 * then 16 zero bytes; then the data section (MaxMind DB data types); then the marker
 * `\xAB\xCD\xEFMaxMind.com` and the metadata map. A record holds a node number
 * (< node_count), node_count itself for "no data", or node_count + 16 + an offset into the
 * data section.
 *
 * There is no maintained MMDB writer on npm, and the fixtures must be reproducible from
 * this repository, hence this file. It favours clarity over speed: a few thousand networks
 * are fine, a full GeoLite2 is not its job.
 */
import { isIP } from 'node:net';

/** Unsigned integer of an explicit width; a plain JS number is written as a double. */
export class MmdbUint {
  constructor(
    readonly bits: 16 | 32 | 64 | 128,
    readonly value: bigint | number,
  ) {}
}
/** Signed 32-bit integer. */
export class MmdbInt32 {
  constructor(readonly value: number) {}
}
/** IEEE 754 single-precision float. */
export class MmdbFloat {
  constructor(readonly value: number) {}
}

export type MmdbValue =
  | string
  | number
  | boolean
  | Buffer
  | MmdbUint
  | MmdbInt32
  | MmdbFloat
  | readonly MmdbValue[]
  | { readonly [key: string]: MmdbValue };

export const uint16 = (value: number) => new MmdbUint(16, value);
export const uint32 = (value: number) => new MmdbUint(32, value);
export const uint64 = (value: bigint | number) => new MmdbUint(64, value);

export interface MmdbWriterOptions {
  databaseType: string;
  /** 4: an IPv4-only tree (32 bits deep). 6 (default): IPv6 tree, IPv4 lives at ::/96. */
  ipVersion?: 4 | 6;
  /** Default: the smallest of 24, 28, 32 that fits. */
  recordSize?: 24 | 28 | 32;
  languages?: string[];
  description?: Record<string, string>;
  /** Seconds since the epoch; fixed by default so that a rebuild gives the same bytes. */
  buildEpoch?: number;
  /**
   * In an IPv6 tree, make ::ffff:0:0/96 (IPv4-mapped) point at the IPv4 subtree, as
   * MaxMind's own databases do. Default true.
   */
  ipv4MappedAlias?: boolean;
}

// Data types (spec "Output Data Section"). 1 (pointer) is never written: no deduplication
// by pointer, identical records are stored once and shared by the tree instead.
const T = {
  utf8: 2,
  double: 3,
  bytes: 4,
  uint16: 5,
  uint32: 6,
  map: 7,
  int32: 8,
  uint64: 9,
  uint128: 10,
  array: 11,
  boolean: 14,
  float: 15,
} as const;

const METADATA_MARKER = Buffer.from([0xab, 0xcd, 0xef, ...Buffer.from('MaxMind.com', 'ascii')]);

/** Control byte(s) for a type and a payload size (spec "Data Field Format"). */
function control(type: number, size: number): Buffer {
  const extended = type > 7;
  const first = (extended ? 0 : type) << 5;
  const extByte = extended ? [type - 7] : [];
  let head: number[];
  if (size < 29) head = [first | size, ...extByte];
  else if (size < 29 + 256) head = [first | 29, ...extByte, size - 29];
  else if (size < 285 + 65536) {
    const n = size - 285;
    head = [first | 30, ...extByte, n >> 8, n & 0xff];
  } else if (size < 65821 + 2 ** 24) {
    const n = size - 65821;
    head = [first | 31, ...extByte, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
  } else throw new RangeError(`size ${size} is too large for an MMDB field`);
  return Buffer.from(head);
}

function uintBytes(value: bigint | number, maxBytes: number): Buffer {
  let v = BigInt(value);
  if (v < 0n || v >= 1n << BigInt(maxBytes * 8)) {
    throw new RangeError(`${value} does not fit in uint${maxBytes * 8}`);
  }
  const out: number[] = [];
  while (v > 0n) {
    out.unshift(Number(v & 0xffn));
    v >>= 8n;
  }
  return Buffer.from(out); // zero is written with size 0, as the spec allows
}

/** Encodes one value in the MaxMind DB data format. */
export function encodeValue(value: MmdbValue): Buffer {
  if (typeof value === 'string') {
    const bytes = Buffer.from(value, 'utf8');
    return Buffer.concat([control(T.utf8, bytes.length), bytes]);
  }
  if (typeof value === 'number') {
    const b = Buffer.alloc(8);
    b.writeDoubleBE(value);
    return Buffer.concat([control(T.double, 8), b]);
  }
  if (typeof value === 'boolean') return control(T.boolean, value ? 1 : 0);
  if (Buffer.isBuffer(value)) return Buffer.concat([control(T.bytes, value.length), value]);
  if (value instanceof MmdbUint) {
    const type = { 16: T.uint16, 32: T.uint32, 64: T.uint64, 128: T.uint128 }[value.bits];
    const bytes = uintBytes(value.value, value.bits / 8);
    return Buffer.concat([control(type, bytes.length), bytes]);
  }
  if (value instanceof MmdbInt32) {
    const b = Buffer.alloc(4);
    b.writeInt32BE(value.value);
    return Buffer.concat([control(T.int32, 4), b]);
  }
  if (value instanceof MmdbFloat) {
    const b = Buffer.alloc(4);
    b.writeFloatBE(value.value);
    return Buffer.concat([control(T.float, 4), b]);
  }
  if (Array.isArray(value)) {
    return Buffer.concat([control(T.array, value.length), ...value.map(encodeValue)]);
  }
  const entries = Object.entries(value as Record<string, MmdbValue>);
  return Buffer.concat([
    control(T.map, entries.length),
    ...entries.flatMap(([k, v]) => [encodeValue(k), encodeValue(v)]),
  ]);
}

/** Parses `a.b.c.d/n` or `x::/n` into the bits of the network in a tree of `depth` bits. */
function networkBits(cidr: string, ipVersion: 4 | 6): boolean[] {
  const [address = '', prefixText] = cidr.split('/');
  const family = isIP(address);
  if (family === 0 || prefixText === undefined || !/^\d{1,3}$/.test(prefixText)) {
    throw new TypeError(`"${cidr}" is not a network in CIDR notation`);
  }
  const prefix = Number(prefixText);
  if (family === 6 && ipVersion === 4) {
    throw new TypeError(`${cidr}: an IPv4 database (ipVersion 4) cannot hold IPv6 networks`);
  }
  const bytes = family === 4 ? ipv4Bytes(address) : ipv6Bytes(address);
  const maxPrefix = bytes.length * 8;
  if (prefix > maxPrefix) throw new TypeError(`${cidr}: prefix longer than the address`);
  const bits: boolean[] = [];
  // IPv4 in an IPv6 tree: 96 zero bits first (::a.b.c.d), the layout MaxMind uses.
  if (family === 4 && ipVersion === 6) for (let i = 0; i < 96; i++) bits.push(false);
  for (let i = 0; i < prefix; i++) {
    bits.push((((bytes[i >> 3] ?? 0) >> (7 - (i & 7))) & 1) === 1);
  }
  return bits;
}

function ipv4Bytes(address: string): number[] {
  return address.split('.').map(Number);
}

function ipv6Bytes(address: string): number[] {
  let text = address;
  // A trailing dotted quad (::ffff:1.2.3.4) becomes two hex groups.
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (quad?.[1]) {
    const [a = 0, b = 0, c = 0, d = 0] = ipv4Bytes(quad[1]);
    text = `${text.slice(0, -quad[1].length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const zeros = tail === undefined ? 0 : 8 - headGroups.length - tailGroups.length;
  const groups = [...headGroups, ...Array<string>(zeros).fill('0'), ...tailGroups];
  return groups.flatMap((g) => {
    const n = Number.parseInt(g, 16);
    return [n >> 8, n & 0xff];
  });
}

type Child = TreeNode | { data: number } | undefined;
interface TreeNode {
  children: [Child, Child];
  /** Set on the node that an alias points at (the IPv4 subtree root). */
  number?: number;
}

export class MmdbWriter {
  readonly #options: Required<Omit<MmdbWriterOptions, 'recordSize'>> & {
    recordSize: MmdbWriterOptions['recordSize'];
  };
  readonly #root: TreeNode = { children: [undefined, undefined] };
  readonly #data: Buffer[] = [];
  #dataSize = 0;
  #hasIpv4 = false;
  readonly #dataIndex = new Map<string, number>();

  constructor(options: MmdbWriterOptions) {
    this.#options = {
      ipVersion: 6,
      languages: ['en'],
      description: { en: options.databaseType },
      buildEpoch: 1_700_000_000,
      ipv4MappedAlias: true,
      ...options,
      recordSize: options.recordSize,
    };
  }

  /**
   * Maps a network to a record. A later, more specific network overrides part of an
   * earlier, larger one; inserting a larger network over smaller ones replaces them.
   */
  insert(cidr: string, record: MmdbValue): this {
    const bits = networkBits(cidr, this.#options.ipVersion);
    if (isIP(cidr.split('/')[0] ?? '') === 4) this.#hasIpv4 = true;
    const leaf = { data: this.#storeData(record) };
    if (bits.length === 0) throw new TypeError('the whole address space (/0) cannot be a record');
    let node = this.#root;
    for (let depth = 0; depth < bits.length - 1; depth++) {
      const side = bits[depth] ? 1 : 0;
      const child = node.children[side];
      if (child === undefined || 'data' in child) {
        // Split an existing record: both halves inherit it, then we descend into one.
        const next: TreeNode = { children: [child, child] };
        node.children[side] = next;
        node = next;
      } else node = child;
    }
    node.children[bits[bits.length - 1] ? 1 : 0] = leaf;
    return this;
  }

  #storeData(record: MmdbValue): number {
    const encoded = encodeValue(record);
    const key = encoded.toString('base64');
    const known = this.#dataIndex.get(key);
    if (known !== undefined) return known;
    const offset = this.#dataSize;
    this.#data.push(encoded);
    this.#dataSize += encoded.length;
    this.#dataIndex.set(key, offset);
    return offset;
  }

  /** Serializes the database. */
  toBuffer(): Buffer {
    const { ipVersion } = this.#options;
    // The ::ffff:0:0/96 alias: the record at depth 96 along ::ffff: points at the node that
    // starts the IPv4 subtree (the one at ::/96), so both spellings find the same data.
    let ipv4Root: TreeNode | undefined;
    if (ipVersion === 6 && this.#options.ipv4MappedAlias && this.#hasIpv4) {
      ipv4Root = this.#descend(Array<boolean>(96).fill(false));
    }

    // Number the nodes breadth-first, root = 0.
    const nodes: TreeNode[] = [];
    const queue: TreeNode[] = [this.#root];
    while (queue.length > 0) {
      const node = queue.shift() as TreeNode;
      node.number = nodes.length;
      nodes.push(node);
      for (const child of node.children) if (child && !('data' in child)) queue.push(child);
    }
    let aliasParent: TreeNode | undefined;
    if (ipv4Root) {
      // ::ffff:0:0/96 is 80 zero bits then 16 one bits; the record at bit 95 is the alias.
      const path = [...Array<boolean>(80).fill(false), ...Array<boolean>(15).fill(true)];
      aliasParent = this.#descendCreating(path, nodes);
      if (aliasParent.children[1] !== undefined) {
        throw new Error('::ffff:0:0/96 holds its own data; drop it or set ipv4MappedAlias false');
      }
    }

    const nodeCount = nodes.length;
    const maxRecord = nodeCount + 16 + this.#dataSize;
    const recordSize =
      this.#options.recordSize ?? (maxRecord < 2 ** 24 ? 24 : maxRecord < 2 ** 28 ? 28 : 32);
    if (maxRecord >= 2 ** recordSize) {
      throw new RangeError(`record size ${recordSize} cannot address ${maxRecord}`);
    }
    const nodeBytes = recordSize / 4;
    const tree = Buffer.alloc(nodeCount * nodeBytes);
    const recordValue = (child: Child): number => {
      if (child === undefined) return nodeCount;
      if ('data' in child) return nodeCount + 16 + child.data;
      return child.number as number;
    };
    for (const node of nodes) {
      const offset = (node.number as number) * nodeBytes;
      const left = recordValue(node.children[0]);
      const right =
        node === aliasParent && ipv4Root
          ? (ipv4Root.number as number)
          : recordValue(node.children[1]);
      writeNode(tree, offset, recordSize, left, right);
    }

    const metadata = encodeValue({
      node_count: uint32(nodeCount),
      record_size: uint16(recordSize),
      ip_version: uint16(ipVersion),
      database_type: this.#options.databaseType,
      languages: this.#options.languages,
      binary_format_major_version: uint16(2),
      binary_format_minor_version: uint16(0),
      build_epoch: uint64(this.#options.buildEpoch),
      description: this.#options.description,
    });
    return Buffer.concat([tree, Buffer.alloc(16), ...this.#data, METADATA_MARKER, metadata]);
  }

  /** The node at the end of `path`, creating empty nodes on the way. */
  #descend(path: boolean[]): TreeNode {
    let node = this.#root;
    for (const bit of path) {
      const side = bit ? 1 : 0;
      const child = node.children[side];
      if (child && 'data' in child) throw new Error('a record covers ::/96: cannot alias IPv4');
      if (!child) {
        const next: TreeNode = { children: [undefined, undefined] };
        node.children[side] = next;
        node = next;
      } else node = child;
    }
    return node;
  }

  /** Like #descend, but numbers nodes it creates after the breadth-first pass. */
  #descendCreating(path: boolean[], nodes: TreeNode[]): TreeNode {
    let node = this.#root;
    for (const bit of path) {
      const side = bit ? 1 : 0;
      const child = node.children[side];
      if (child && 'data' in child) throw new Error('a record covers ::ffff:0:0/96');
      if (!child) {
        const next: TreeNode = { children: [undefined, undefined], number: nodes.length };
        nodes.push(next);
        node.children[side] = next;
        node = next;
      } else node = child;
    }
    return node;
  }
}

function writeNode(buf: Buffer, offset: number, size: 24 | 28 | 32, left: number, right: number) {
  if (size === 24) {
    buf.writeUIntBE(left, offset, 3);
    buf.writeUIntBE(right, offset + 3, 3);
  } else if (size === 28) {
    // The middle byte's high nibble holds the left record's top 4 bits, its low nibble the
    // right record's (spec "Search Tree Section", 28 bits).
    buf.writeUIntBE(left & 0xffffff, offset, 3);
    buf[offset + 3] = ((left >>> 24) << 4) | (right >>> 24);
    buf.writeUIntBE(right & 0xffffff, offset + 4, 3);
  } else {
    buf.writeUInt32BE(left, offset);
    buf.writeUInt32BE(right, offset + 4);
  }
}
