/**
 * Message bodies on the wire. Dataverse posts a context as the raw bytes of its JSON or XML text, so
 * the relay sends bytes, never a string: the JavaScript Service Bus and Event Hubs clients would
 * write a string body as a JSON string literal ("{\"BusinessUnitId\":…}"), which a .NET listener
 * reading the body as text could not parse.
 */

/** The bytes to send for a text body. */
export function textBody(text: string): Buffer {
  return Buffer.from(text, "utf8");
}

/**
 * A received body as text: bytes as UTF-8. A body that a JavaScript client sent as a string arrives
 * as a JSON string literal and is unwrapped; an already-parsed value (a receiver without
 * skipParsingBodyAsJson) is written back as JSON.
 */
export function messageText(body: unknown): string {
  let text: string;
  if (typeof body === "string") text = body;
  else if (body instanceof Uint8Array) text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("utf8");
  else return JSON.stringify(body) ?? "";
  if (text.length >= 2 && text.startsWith('"') && text.endsWith('"')) {
    try {
      const inner: unknown = JSON.parse(text);
      if (typeof inner === "string") return inner;
    } catch {
      // not a JSON string literal after all: the text as it is
    }
  }
  return text;
}
