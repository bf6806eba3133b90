// @azure/identity's ManagedIdentityCredential over the App Service protocol:
// IDENTITY_ENDPOINT and IDENTITY_HEADER, as wif's webhook injects them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { env, skip, cleanEnvironment, claims } from "./helpers.mjs";

cleanEnvironment();
if (env.imdsURL) {
  process.env.IDENTITY_ENDPOINT = `${env.imdsURL}/msi/token`;
  process.env.IDENTITY_HEADER = env.identityHeader;
}
const { ManagedIdentityCredential } = await import("@azure/identity");

test("App Service: gets a token for the workload", { skip }, async () => {
  const cred = new ManagedIdentityCredential();
  const tok = await cred.getToken(env.scope);
  assert.equal(tok.tokenType, "Bearer");
  const c = claims(tok.token);
  for (const [k, v] of Object.entries(env.expectClaims)) {
    assert.deepEqual(c[k], v, `claim ${k}`);
  }
});
