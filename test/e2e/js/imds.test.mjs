// @azure/identity's ManagedIdentityCredential over the IMDS protocol, moved
// to wif imds by AZURE_POD_IDENTITY_AUTHORITY_HOST (as on AKS with the
// proxy sidecar). With that variable set the credential sends no probe.
import { test } from "node:test";
import assert from "node:assert/strict";
import { env, skip, cleanEnvironment, claims } from "./helpers.mjs";

cleanEnvironment();
if (env.imdsURL) process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = env.imdsURL;
const { ManagedIdentityCredential } = await import("@azure/identity");

test("IMDS: system-assigned form gets a token for the workload", { skip }, async () => {
  const cred = new ManagedIdentityCredential();
  const before = Date.now();
  const tok = await cred.getToken(env.scope);
  assert.equal(tok.tokenType, "Bearer");
  assert.ok(tok.expiresOnTimestamp > before + 10 * 60 * 1000, `expires ${new Date(tok.expiresOnTimestamp).toISOString()}`);
  const c = claims(tok.token);
  for (const [k, v] of Object.entries(env.expectClaims)) {
    assert.deepEqual(c[k], v, `claim ${k}`);
  }
});

test("IMDS: user-assigned by the workload's client id", { skip }, async () => {
  const cred = new ManagedIdentityCredential({ clientId: env.clientId });
  const tok = await cred.getToken(env.scope);
  assert.deepEqual(claims(tok.token).tid, env.expectClaims.tid);
});

test("IMDS: another client id is refused with wif's explanation", { skip }, async () => {
  const cred = new ManagedIdentityCredential({ clientId: "99999999-9999-9999-9999-999999999999" });
  await assert.rejects(cred.getToken(env.scope), (err) => {
    assert.match(err.message, /holds the federated token of one workload/);
    return true;
  });
});

test("IMDS: a resource id is refused as unsupported", { skip }, async () => {
  const cred = new ManagedIdentityCredential({
    resourceId: "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/demo",
  });
  await assert.rejects(cred.getToken(env.scope), /selecting the identity by msi_res_id is not supported/);
});

test("IMDS: the token service's refusal reaches the caller", { skip }, async () => {
  const cred = new ManagedIdentityCredential();
  await assert.rejects(cred.getToken(env.unknownScope), (err) => {
    assert.ok(err.message.includes(env.unknownError), err.message);
    return true;
  });
});
