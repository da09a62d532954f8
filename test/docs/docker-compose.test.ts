/**
 * deploy/docker-compose.yml is for running elsewhere (there is no Docker here): what can be checked
 * without running it is. The file against the Compose Specification's JSON schema (vendored in
 * test/fixtures/compose-spec, its source in the README there), each plugbox host's command through
 * plugbox's own CLI (the serve command's action swapped for one that records the flags, so no server
 * starts), the files the compose file and the Dockerfile name, the published ports, the emulator's
 * Config.json (in the emulator's limits) and the manifest's endpoints against it.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import { CommanderError } from "commander";
import { DockerfileParser, type Instruction } from "dockerfile-ast";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { createProgram } from "../../dist/host/cli/main.js";
import { parseEmulatorConfig } from "../../dist/host/broker/index.js";
import { loadManifest } from "../../dist/host/registry/manifest.js";
import { readServiceEndpoint, SecretResolver } from "../../dist/host/relay/index.js";
import { repo } from "../helpers/cli.js";

const composeFile = path.join(repo, "deploy/docker-compose.yml");
const composeDir = path.dirname(composeFile);

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: unknown;
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }> | string[];
}
interface Compose {
  services: Record<string, Service>;
}

// Compose reads YAML 1.2 with merge keys (`<<: *plugbox`).
const compose = parse(readFileSync(composeFile, "utf8"), { merge: true }) as Compose;
const plugboxServices = Object.entries(compose.services).filter(([, service]) => service.build !== undefined);
const composeSchema = JSON.parse(readFileSync(path.join(repo, "test/fixtures/compose-spec/compose-spec.json"), "utf8")) as object;
// Ajv stays strict but for its type style checks (the schema writes union types such as ["boolean", "string"]).
const validateCompose = new Ajv2020({ allErrors: true, strictTypes: false }).compile(composeSchema);

/** The Dockerfile's final stage: its working directory, entrypoint and COPY sources. */
function readDockerfile(file: string): { workdir: string; entrypoint: string[]; copies: string[] } {
  const dockerfile = DockerfileParser.parse(readFileSync(file, "utf8"));
  const lastFrom = dockerfile.getFROMs().at(-1)!.getRange().start.line;
  const inFinalStage = (instruction: Instruction) => instruction.getRange().start.line > lastFrom;
  const workdirs = dockerfile.getInstructions().filter((i) => i.getKeyword() === "WORKDIR" && inFinalStage(i));
  const entrypoints = dockerfile.getENTRYPOINTs().filter(inFinalStage);
  return {
    workdir: workdirs.at(-1)!.getArgumentsContent()!,
    entrypoint: entrypoints.at(-1)!.getJSONStrings().map((s) => s.getJSONValue()),
    // Only sources from the build context (a --from copies from another stage).
    copies: dockerfile.getCOPYs().filter((c) => c.getFromFlag() === null).flatMap((c) => c.getArguments().slice(0, -1).map((a) => a.getValue())),
  };
}

/** Parses `args` as plugbox's CLI does, with the serve command's action recording its flags instead of serving. */
async function parseServe(args: string[]): Promise<{ flags: Record<string, unknown> | undefined; errors: string[] }> {
  const errors: string[] = [];
  const program = createProgram({ out: () => {}, err: (text) => errors.push(text), setExitCode: () => {} });
  let flags: Record<string, unknown> | undefined;
  program.commands.find((command) => command.name() === "serve")!.action((given: Record<string, unknown>) => {
    flags = given;
  });
  try {
    await program.parseAsync(args, { from: "user" });
  } catch (error) {
    if (!(error instanceof CommanderError)) throw error;
  }
  return { flags, errors };
}

describe("deploy/docker-compose.yml", () => {
  it("is valid against the Compose Specification's schema", () => {
    const valid = validateCompose(compose);
    expect(validateCompose.errors ?? []).toEqual([]);
    expect(valid).toBe(true);
  });

  it("and the schema refuses what Compose refuses (a service key that does not exist)", () => {
    expect(validateCompose({ services: { postgres: { image: "postgres:18", healthcheck: { tset: ["CMD", "true"] } } } })).toBe(false);
  });

  it("runs PostgreSQL with a pg_isready health check and a named volume, the emulator with its SQL Server, and three plugbox hosts", () => {
    expect(Object.keys(compose.services).sort()).toEqual(["plugbox-1", "plugbox-2", "plugbox-3", "postgres", "servicebus-emulator", "sqledge"]);
    const postgres = compose.services.postgres! as Service & { healthcheck: { test: string[] } };
    expect(postgres.healthcheck.test.join(" ")).toContain("pg_isready");
    expect(postgres.volumes).toEqual(["pgdata:/var/lib/postgresql"]);
    expect(compose.services["servicebus-emulator"]!.environment!.SQL_SERVER).toBe("sqledge");
    expect(plugboxServices.map(([name]) => name)).toEqual(["plugbox-1", "plugbox-2", "plugbox-3"]);
    for (const [, service] of plugboxServices) expect(service.depends_on).toMatchObject({ postgres: { condition: "service_healthy" } });
  });

  it("publishes no port of the machine twice", () => {
    const published = Object.entries(compose.services).flatMap(([name, service]) => (service.ports ?? []).map((port) => ({ name, host: port.split(":").at(-2)! })));
    expect(published.length).toBeGreaterThanOrEqual(5);
    const seen = new Map<string, string>();
    const clashes: string[] = [];
    for (const { name, host } of published) {
      if (seen.has(host)) clashes.push(`${host}: ${seen.get(host)} and ${name}`);
      seen.set(host, name);
    }
    expect(clashes).toEqual([]);
  });

  it("names files that exist: the build context, the Dockerfile and what it copies, the bind mounts", () => {
    const missing: string[] = [];
    for (const [name, service] of Object.entries(compose.services)) {
      for (const volume of service.volumes ?? []) {
        const source = volume.split(":")[0]!;
        if (source.startsWith(".") && !existsSync(path.resolve(composeDir, source))) missing.push(`${name}: ${source}`);
      }
    }
    for (const [name, { build }] of plugboxServices) {
      const context = path.resolve(composeDir, build!.context);
      expect(context).toBe(repo);
      const dockerfile = path.resolve(context, build!.dockerfile);
      if (!existsSync(dockerfile)) missing.push(`${name}: ${build!.dockerfile}`);
      else for (const source of readDockerfile(dockerfile).copies) if (!existsSync(path.resolve(context, source))) missing.push(`${build!.dockerfile}: COPY ${source}`);
    }
    expect(missing).toEqual([]);
  });
});

describe("the plugbox hosts", () => {
  const { build } = plugboxServices[0]![1];
  const image = readDockerfile(path.resolve(repo, build!.dockerfile));
  /** A path in the image, as a path of the checkout (the Dockerfile copies the checkout to its WORKDIR). */
  const inCheckout = (file: string) => path.join(repo, path.posix.relative(image.workdir, path.posix.resolve(image.workdir, file)));

  it("run the image's plugbox bin, the one package.json names", () => {
    const { bin } = JSON.parse(readFileSync(path.join(repo, "package.json"), "utf8")) as { bin: { plugbox: string } };
    expect(image.copies).toEqual(["."]);
    expect(image.entrypoint).toEqual(["node", bin.plugbox]);
    expect(existsSync(inCheckout(bin.plugbox))).toBe(true);
  });

  it.each(plugboxServices)("%s's command is a plugbox serve invocation plugbox's CLI accepts", async (_name, service) => {
    // The exec form: Compose passes it to the entrypoint as it is, with no shell between.
    expect(Array.isArray(service.command)).toBe(true);
    const args = service.command as string[];
    expect(args[0]).toBe("serve");
    const { flags, errors } = await parseServe(args);
    expect(errors).toEqual([]);
    expect(flags).toMatchObject({ host: "0.0.0.0", port: 8080, db: expect.stringMatching(/^postgres:\/\/[^@]+@postgres:5432\/\w+$/) });
    // Every host listens on the port its ports entry publishes.
    expect(service.ports!.map((p) => p.split(":").at(-1))).toEqual([String(flags!.port)]);
    expect(existsSync(inCheckout(flags!.manifest as string))).toBe(true);
  });

  it("a command plugbox refuses is refused by the same check", async () => {
    expect((await parseServe(["serve", "--manifest", "plugbox.json", "--port", "70000"])).errors.join("\n")).toContain("CLI_USAGE");
    expect((await parseServe(["serve", "--db", "postgres://postgres/plugbox"])).errors.join("\n")).toContain("--manifest");
  });

  it.each(plugboxServices)("%s's manifest loads, its bundles exist, and each Service Bus endpoint reaches a queue of the emulator's Config.json with the service's environment", async (_name, service) => {
    const args = service.command as string[];
    const manifest = await loadManifest(inCheckout(args[args.indexOf("--manifest") + 1]!));
    for (const bundle of manifest.bundles.values()) expect(existsSync(bundle.path)).toBe(true);
    const mount = compose.services["servicebus-emulator"]!.volumes!.find((v) => v.includes("/ServiceBus_Emulator/ConfigFiles/Config.json"))!;
    const config = parseEmulatorConfig(readFileSync(path.resolve(composeDir, mount.split(":")[0]!), "utf8"), { strict: true, file: mount.split(":")[0]! });
    const queues = config.queues!.map((q) => q.name);
    expect(manifest.serviceEndpoints.length).toBeGreaterThan(0);
    for (const declared of manifest.serviceEndpoints) {
      const endpoint = readServiceEndpoint(declared, new SecretResolver({ env: service.environment! }));
      expect(endpoint.transport).toBe("serviceBus");
      expect(queues).toContain(endpoint.path);
      // The emulator's documented connection string, its host the emulator's service name.
      expect(endpoint.connectionString).toBe("Endpoint=sb://servicebus-emulator;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;");
    }
  });
});
