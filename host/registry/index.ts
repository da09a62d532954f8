/**
 * Manifests and the step registry.
 * @module
 */
export { Registry } from "./registry.js";
export type { StepInput } from "./registry.js";
export { checkBundleExports, readBundleExports } from "./bundle-exports.js";
export { parseManifest, loadManifest, stableGuid, RegistryError, REGISTRY_ERRORS, IMAGE_MESSAGES, manifestSettingDefaults } from "./manifest.js";
export type {
  Manifest,
  ManifestSettings,
  StepRegistration,
  StepImage,
  BundleRegistration,
  ServiceEndpointRegistration,
  StageNumber,
  StepMode,
  ImageType,
  RegistryErrorCode,
} from "./manifest.js";
