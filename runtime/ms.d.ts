// ms 2.1.3 ships no types; this is the one call plugbox makes of it (runtime/duration.ts).
declare module "ms" {
  /** Milliseconds in a duration such as "2d", "10s", "1.5h", "500ms"; undefined when it is not one. */
  function ms(value: string): number | undefined;
  export = ms;
}
