/**
 * The registry of steps the pipeline runs: loaded from a manifest, and open to programmatic
 * registration (validated by the same rules).
 */
import type { TableSchema } from "../store/table-schema.js";
import {
  manifestSettingDefaults,
  parseManifest,
  type BundleRegistration,
  type Manifest,
  type ManifestSettings,
  type ServiceEndpointRegistration,
  type StageNumber,
  type StepRegistration,
} from "./manifest.js";

/** A step as code registers it: the manifest's step entry. */
export type StepInput = Record<string, unknown>;

export class Registry {
  readonly bundles: Map<string, BundleRegistration>;
  readonly serviceEndpoints: ServiceEndpointRegistration[];
  readonly tables: Map<string, TableSchema>;
  readonly settings: ManifestSettings;
  #steps: StepRegistration[];
  /** stepsFor's answers, by message, entity and stage; emptied whenever the steps change. */
  readonly #index = new Map<string, StepRegistration[]>();
  readonly #baseDir: string;

  constructor(manifest?: Manifest, baseDir = process.cwd()) {
    this.bundles = manifest?.bundles ?? new Map();
    this.serviceEndpoints = manifest?.serviceEndpoints ?? [];
    this.tables = manifest?.tables ?? new Map();
    this.settings = manifest?.settings ?? { ...manifestSettingDefaults };
    this.#steps = manifest?.steps ?? [];
    this.#baseDir = baseDir;
  }

  get steps(): readonly StepRegistration[] {
    return this.#steps;
  }

  /** Adds a bundle by name and path. */
  addBundle(name: string, bundlePath: string, options: { types?: string[]; allowedHosts?: string[] } = {}): void {
    const parsed = parseManifest({ bundles: { [name]: { path: bundlePath, ...options } } }, "registerBundle", this.#baseDir);
    this.bundles.set(name, parsed.bundles.get(name)!);
  }

  /** Registers a step, validated as a manifest entry would be. Returns it (with its id). */
  addStep(step: StepInput): StepRegistration {
    const endpoints = this.serviceEndpoints.map((e) => ({ ...e }));
    const bundles = Object.fromEntries([...this.bundles.values()].map((b) => [b.name, { path: b.path, ...(b.types ? { types: b.types } : {}) }]));
    const parsed = parseManifest({ bundles, serviceEndpoints: endpoints, steps: [step] }, "registerStep", this.#baseDir);
    const registered = parsed.steps[0]!;
    if (this.#steps.some((s) => s.id === registered.id)) throw new Error(`a step with id ${registered.id} is already registered`);
    this.#steps = [...this.#steps, registered];
    this.#index.clear();
    return registered;
  }

  removeStep(id: string): boolean {
    const before = this.#steps.length;
    this.#steps = this.#steps.filter((s) => s.id !== id);
    this.#index.clear();
    return this.#steps.length < before;
  }

  /** Enabled steps for a message on a table at a stage, in execution order (rank, then registration order). */
  stepsFor(message: string, entity: string | null, stage: StageNumber): StepRegistration[] {
    const key = `${message}|${entity}|${stage}`;
    let steps = this.#index.get(key);
    if (!steps) {
      steps = this.#select(message, entity, stage);
      this.#index.set(key, steps);
    }
    return steps;
  }

  #select(message: string, entity: string | null, stage: StageNumber): StepRegistration[] {
    return this.#steps
      .map((step, index) => ({ step, index }))
      .filter(({ step }) => step.enabled && step.message === message && step.stage === stage && (step.entity === null || step.entity === entity))
      .sort((a, b) => a.step.rank - b.step.rank || a.index - b.index)
      .map(({ step }) => step);
  }

  step(id: string): StepRegistration | undefined {
    return this.#steps.find((s) => s.id === id);
  }

  schemaFor(table: string): TableSchema | undefined {
    return this.tables.get(table);
  }
}
