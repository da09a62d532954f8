/**
 * Webhooks with undici: one POST per post, the endpoint's auth in the query or the headers, one
 * more attempt on 502, 503 and 504.
 */
import { request } from "undici";
import { RelayError } from "../errors.js";
import { describeError, type OutgoingPost, type RelayTransport } from "./transport.js";

const RETRY_ONCE = new Set([502, 503, 504]);

export class WebhookTransport implements RelayTransport {
  async post(post: OutgoingPost): Promise<string | null> {
    const { endpoint } = post;
    const url = new URL(endpoint.url!);
    const headers: Record<string, string> = { "content-type": "application/json", ...post.headers };
    if (endpoint.authType === "WebhookKey") url.searchParams.set("code", endpoint.authValues.code!);
    if (endpoint.authType === "HttpQueryString") for (const [k, v] of Object.entries(endpoint.authValues)) url.searchParams.set(k, v);
    if (endpoint.authType === "HttpHeader") Object.assign(headers, endpoint.authValues);
    // Dataverse makes one more attempt on 502, 503 and 504 only; anything else non-2xx fails the post.
    for (let attempt = 1; ; attempt++) {
      let status: number;
      let text: string;
      try {
        const response = await request(url, { method: "POST", headers, body: post.body, signal: post.signal ? AbortSignal.any([post.signal, AbortSignal.timeout(endpoint.timeoutMs)]) : AbortSignal.timeout(endpoint.timeoutMs), headersTimeout: endpoint.timeoutMs, bodyTimeout: endpoint.timeoutMs });
        status = response.statusCode;
        text = await response.body.text();
      } catch (error) {
        const timedOut = (error as { name?: string }).name === "TimeoutError" || /timeout/i.test(String((error as { code?: string }).code));
        throw new RelayError(timedOut ? "RELAY_TIMEOUT" : "RELAY_UNREACHABLE", `the webhook of endpoint "${endpoint.name}" at ${url.origin}${url.pathname} ${timedOut ? `did not answer within ${endpoint.timeoutMs} ms` : `could not be reached: ${describeError(error)}`}`);
      }
      if (status >= 200 && status < 300) return text === "" ? null : text;
      if (attempt === 1 && RETRY_ONCE.has(status)) continue;
      throw new RelayError(RETRY_ONCE.has(status) ? "RELAY_UNREACHABLE" : "RELAY_REJECTED", `the webhook of endpoint "${endpoint.name}" answered ${status}`);
    }
  }
  async connect(): Promise<void> {}
  async close(): Promise<void> {}
}
