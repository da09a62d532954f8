/** Error codes of `plugbox/testing`'s run builder (`forPlugin`). */
import { codesOf, PlugboxError, type ErrorTable } from "../../sdk/errors.js";

export const TESTING_ERRORS = {
  TEST_RUN_FAILED: { family: "usage", means: "a test read `changes` of a plug-in run that failed; check `result.ok` first, or assert the failure with `toHaveFailedWith`" },
  TEST_BUILDER_INVALID: { family: "usage", means: "a `forPlugin(…)` run was described in a way that cannot run, e.g. a target given as columns before naming its table" },
} as const satisfies ErrorTable;

export type TestingErrorCode = keyof typeof TESTING_ERRORS;

export class TestingError extends PlugboxError<TestingErrorCode> {
  static override readonly codes = codesOf(TESTING_ERRORS);
}
