/**
 * The default identities of an organization, in one place: the organization, its business unit,
 * the user a request runs as when its caller names none, and SYSTEM.
 */

/** The SYSTEM user: what createOrganizationService(null) acts as. */
export const SYSTEM_USER_ID = "00000000-0000-0000-0000-00000000000a";

export interface Identity {
  organizationId: string;
  organizationName: string;
  businessUnitId: string;
  /** The user a request runs as when its caller names none. */
  defaultUserId: string;
}

export const identityDefaults: Readonly<Identity> = Object.freeze({
  organizationId: "00000000-0000-0000-0000-000000000003",
  organizationName: "plugbox",
  businessUnitId: "00000000-0000-0000-0000-000000000002",
  defaultUserId: "00000000-0000-0000-0000-000000000001",
});
