// A process whose IDENTITY_HEADER is not the endpoint's is refused (its own
// file, so its own process: msal-node keeps the managed-identity source it
// detected first for the life of the process).
import { test } from "node:test";
import assert from "node:assert/strict";
import { env, skip, cleanEnvironment } from "./helpers.mjs";

cleanEnvironment();
if (env.imdsURL) {
  process.env.IDENTITY_ENDPOINT = `${env.imdsURL}/msi/token`;
  process.env.IDENTITY_HEADER = "not-the-identity-header-of-this-pod";
}
const { ManagedIdentityCredential } = await import("@azure/identity");

test("App Service: a wrong IDENTITY_HEADER is refused", { skip }, async () => {
  const cred = new ManagedIdentityCredential();
  await assert.rejects(cred.getToken(env.scope), /does not match this endpoint's IDENTITY_HEADER/);
});
