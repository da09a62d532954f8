/** One figure of a benchmark: its value and its ratio against a baseline measured in the same run. */
export interface BenchRow {
  name: string;
  value: number;
  unit: string;
  baseline: string;
  ratio: number;
  goal?: string;
}
