/**
 * The counters `plugbox serve` keeps and their Prometheus text exposition (version 0.0.4,
 * https://prometheus.io/docs/instrumenting/exposition_formats/). Written by hand: no Prometheus client
 * is among plugbox's dependencies, and the format (HELP/TYPE lines, labelled samples, cumulative
 * histogram buckets) is a few lines of text, not worth a new dependency.
 */

/** Upper bounds of the request duration histogram, seconds (Prometheus clients' default buckets). */
export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

type Labels = Record<string, string>;

/** A label value escaped as the format asks (backslash, double quote, line feed). */
function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function labelText(labels: Labels): string {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return pairs.length === 0 ? "" : `{${pairs.join(",")}}`;
}

/** A counter or gauge family: samples by their label set. */
class Family {
  readonly #samples = new Map<string, { labels: Labels; value: number }>();
  constructor(
    readonly name: string,
    readonly type: "counter" | "gauge",
    readonly help: string,
  ) {}

  add(labels: Labels, by = 1): void {
    const key = labelText(labels);
    const sample = this.#samples.get(key);
    if (sample) sample.value += by;
    else this.#samples.set(key, { labels, value: by });
  }

  lines(): string[] {
    return [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`, ...[...this.#samples.values()].map((s) => `${this.name}${labelText(s.labels)} ${s.value}`)];
  }
}

class Histogram {
  readonly #counts = DURATION_BUCKETS.map(() => 0);
  #sum = 0;
  #count = 0;
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  observe(seconds: number): void {
    DURATION_BUCKETS.forEach((bound, i) => {
      if (seconds <= bound) this.#counts[i]! += 1;
    });
    this.#sum += seconds;
    this.#count += 1;
  }

  lines(): string[] {
    return [
      `# HELP ${this.name} ${this.help}`,
      `# TYPE ${this.name} histogram`,
      ...DURATION_BUCKETS.map((bound, i) => `${this.name}_bucket{le="${bound}"} ${this.#counts[i]}`),
      `${this.name}_bucket{le="+Inf"} ${this.#count}`,
      `${this.name}_sum ${this.#sum}`,
      `${this.name}_count ${this.#count}`,
    ];
  }
}

/** What the server counts as it serves; gauges read at scrape time are passed to `exposition`. */
export class ServeMetrics {
  readonly requests = new Family("plugbox_requests_total", "counter", "Organization requests served over HTTP, by message and outcome (ok, failed: the pipeline refused or failed it, rejected: refused before the pipeline)");
  readonly executions = new Family("plugbox_executions_total", "counter", "Plug-in step executions in requests served over HTTP, by outcome");
  readonly relayPosts = new Family("plugbox_relay_posts_total", "counter", "Notification posts by synchronous steps of requests served over HTTP, by outcome");
  readonly jobRuns = new Family("plugbox_job_runs_total", "counter", "System job attempts by the host's background job runner, by outcome (succeeded, failed, retrying, waiting, lost)");
  readonly duration = new Histogram("plugbox_request_duration_seconds", "Time to answer an organization request over HTTP, seconds");

  /** The text of a scrape: the counters, then the gauges read now. */
  exposition(gauges: { jobs: Record<string, number>; workers: Record<string, number> }): string {
    const jobs = new Family("plugbox_jobs", "gauge", "System jobs in the store, by state");
    for (const [state, n] of Object.entries(gauges.jobs)) jobs.add({ state }, n);
    const workers = new Family("plugbox_sandbox_workers", "gauge", "Sandbox worker processes, by status (wanted, ready, starting)");
    for (const [status, n] of Object.entries(gauges.workers)) workers.add({ status }, n);
    return [...this.requests.lines(), ...this.executions.lines(), ...this.relayPosts.lines(), ...this.jobRuns.lines(), ...this.duration.lines(), ...jobs.lines(), ...workers.lines()].join("\n") + "\n";
  }
}
