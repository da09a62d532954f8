/**
 * Maps plug-in stack traces from the bundle back to the author's TypeScript, using the inline
 * source map that `plugbox build` writes into every bundle.
 */
import path from "node:path";
import { SourceMapConsumer, type RawSourceMap } from "source-map-js";

export type StackMapper = (stack: string) => string;

const INLINE_MAP = /\/\/[#@] sourceMappingURL=data:application\/json(?:;charset=[^;,]+)?;base64,([A-Za-z0-9+/=]+)\s*$/;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Returns a mapper, or null when the bundle carries no usable inline source map. */
export function createStackMapper(source: string, filename: string, firstLineShift: number, sourceDir?: string): StackMapper | null {
  const match = INLINE_MAP.exec(source.slice(-Math.min(source.length, 16 * 1024 * 1024)));
  if (!match) return null;
  let consumer: SourceMapConsumer;
  try {
    const raw = JSON.parse(Buffer.from(match[1]!, "base64").toString("utf8")) as RawSourceMap;
    consumer = new SourceMapConsumer(raw);
  } catch {
    return null;
  }
  // In debug mode the bundle runs under its file URL (file:///…/bundle.js): the whole URL is replaced.
  const frame = new RegExp(`(?:file://[^\\s()]*/)?${escapeRegExp(filename)}:(\\d+):(\\d+)`, "g");
  return (stack) =>
    stack.replace(frame, (whole, lineText: string, columnText: string) => {
      const line = Number(lineText);
      let column = Number(columnText) - 1;
      if (line === 1) column -= firstLineShift;
      const original = consumer.originalPositionFor({ line, column: Math.max(0, column) });
      if (original.source === null || original.line === null) return whole;
      // Sources are relative to the bundle file; show them relative to where plugbox runs.
      const file = sourceDir === undefined ? original.source : path.relative(process.cwd(), path.resolve(sourceDir, original.source));
      return `${file}:${original.line}:${(original.column ?? 0) + 1}`;
    });
}

/** Drops the sandbox's own frames (the shim's), which say nothing about the plug-in. */
export function withoutShimFrames(stack: string): string {
  return stack
    .split("\n")
    .filter((line) => !line.includes("plugbox-shim.js"))
    .join("\n");
}
