/**
 * Classifies IP addresses for the network policy: which ones a plug-in may never reach.
 * IPv4 embedded in IPv6 (mapped, compatible, NAT64, 6to4) is judged by its IPv4 address.
 */
import { isIPv4, isIPv6 } from "node:net";

export type AddressClass = "public" | "loopback" | "unspecified" | "private" | "link-local" | "unique-local" | "multicast" | "reserved";

function ipv4Bytes(address: string): number[] {
  return address.split(".").map(Number);
}

function inV4(bytes: number[], base: number[], bits: number): boolean {
  let remaining = bits;
  for (let i = 0; i < 4 && remaining > 0; i++) {
    const take = Math.min(8, remaining);
    const mask = (0xff << (8 - take)) & 0xff;
    if ((bytes[i]! & mask) !== (base[i]! & mask)) return false;
    remaining -= take;
  }
  return true;
}

const V4_RANGES: Array<[number[], number, AddressClass]> = [
  [[0, 0, 0, 0], 8, "unspecified"],
  [[127, 0, 0, 0], 8, "loopback"],
  [[10, 0, 0, 0], 8, "private"],
  [[172, 16, 0, 0], 12, "private"],
  [[192, 168, 0, 0], 16, "private"],
  [[100, 64, 0, 0], 10, "private"], // carrier-grade NAT
  [[169, 254, 0, 0], 16, "link-local"], // cloud metadata at 169.254.169.254
  [[192, 0, 0, 0], 24, "reserved"],
  [[192, 0, 2, 0], 24, "reserved"],
  [[198, 18, 0, 0], 15, "reserved"],
  [[198, 51, 100, 0], 24, "reserved"],
  [[203, 0, 113, 0], 24, "reserved"],
  [[224, 0, 0, 0], 4, "multicast"],
  [[240, 0, 0, 0], 4, "reserved"], // includes 255.255.255.255
];

export function classifyIPv4(address: string): AddressClass {
  const bytes = ipv4Bytes(address);
  for (const [base, bits, kind] of V4_RANGES) if (inV4(bytes, base, bits)) return kind;
  return "public";
}

/** The eight 16-bit groups of an IPv6 address (with any dotted IPv4 tail folded in). */
export function ipv6Groups(address: string): number[] {
  let text = address.toLowerCase();
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.slice(0, zone);
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (tail) {
    const [a, b, c, d] = ipv4Bytes(tail[1]!);
    text = text.slice(0, -tail[1]!.length) + `${((a! << 8) | b!).toString(16)}:${((c! << 8) | d!).toString(16)}`;
  }
  const [head, rest] = text.includes("::") ? text.split("::") : [text, undefined];
  const left = head ? head.split(":").filter((g) => g !== "") : [];
  const right = rest !== undefined && rest !== "" ? rest.split(":") : [];
  const zeros = rest === undefined ? [] : new Array(8 - left.length - right.length).fill("0");
  return [...left, ...zeros, ...right].map((g) => parseInt(g, 16));
}

function embeddedV4(groups: number[], high: number): string {
  const a = groups[high]!;
  const b = groups[high + 1]!;
  return `${a >> 8}.${a & 0xff}.${b >> 8}.${b & 0xff}`;
}

export function classifyIPv6(address: string): AddressClass {
  const g = ipv6Groups(address);
  const firstSixZero = g.slice(0, 5).every((x) => x === 0);
  if (g.every((x) => x === 0)) return "unspecified";
  if (g.slice(0, 7).every((x) => x === 0) && g[7] === 1) return "loopback";
  if (firstSixZero && g[5] === 0xffff) return classifyIPv4(embeddedV4(g, 6)); // ::ffff:a.b.c.d
  if (firstSixZero && g[5] === 0) return classifyIPv4(embeddedV4(g, 6)); // ::a.b.c.d (deprecated)
  if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0)) return classifyIPv4(embeddedV4(g, 6)); // NAT64
  if (g[0] === 0x2002) return classifyIPv4(embeddedV4(g, 1)); // 6to4
  if ((g[0]! & 0xffc0) === 0xfe80) return "link-local";
  if ((g[0]! & 0xffc0) === 0xfec0) return "private"; // site-local (deprecated)
  if ((g[0]! & 0xfe00) === 0xfc00) return "unique-local";
  if ((g[0]! & 0xff00) === 0xff00) return "multicast";
  if (g[0] === 0x2001 && g[1] === 0x0db8) return "reserved"; // documentation
  if (g[0] === 0x0100 && g.slice(1, 4).every((x) => x === 0)) return "reserved"; // discard
  return "public";
}

export function classifyAddress(address: string): AddressClass {
  if (isIPv4(address)) return classifyIPv4(address);
  if (isIPv6(address)) return classifyIPv6(address);
  throw new TypeError(`${address} is not an IP address`);
}
