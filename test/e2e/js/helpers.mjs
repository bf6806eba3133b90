// Shared by the tests: what the Go driver (e2e_test.go) passes in, and
// decoding an access token's claims.
//
//   WIF_E2E_IMDS_URL         base URL of a running `wif imds` (http://127.0.0.1:PORT)
//   WIF_E2E_IDENTITY_HEADER  its IDENTITY_HEADER
//   WIF_E2E_CLIENT_ID        the workload's client id (wif imds --client-id)
//   WIF_E2E_SCOPE            a scope the workload may get a token for (api://provider-api/.default)
//   WIF_E2E_EXPECT_CLAIMS    JSON object of claims the access token must carry
//   WIF_E2E_UNKNOWN_SCOPE    a scope the token service refuses (no such resource)
//   WIF_E2E_UNKNOWN_ERROR    text the refusal must contain (e.g. AADSTS500011)

export const env = {
  imdsURL: process.env.WIF_E2E_IMDS_URL,
  identityHeader: process.env.WIF_E2E_IDENTITY_HEADER,
  clientId: process.env.WIF_E2E_CLIENT_ID,
  scope: process.env.WIF_E2E_SCOPE,
  expectClaims: JSON.parse(process.env.WIF_E2E_EXPECT_CLAIMS ?? "{}"),
  unknownScope: process.env.WIF_E2E_UNKNOWN_SCOPE,
  unknownError: process.env.WIF_E2E_UNKNOWN_ERROR,
};

// skip is a reason to skip when the driver did not start the servers.
export const skip = env.imdsURL
  ? false
  : "WIF_E2E_IMDS_URL is not set: run `go test ./test/e2e/js`, which starts wif's token service and wif imds";

// cleanEnvironment removes what would make ManagedIdentityCredential pick
// another source than the one under test (the token-exchange path wins when
// AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE are set).
export function cleanEnvironment() {
  for (const k of [
    "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST",
    "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT",
    "MSI_ENDPOINT", "MSI_SECRET", "AZURE_POD_IDENTITY_AUTHORITY_HOST",
  ]) {
    delete process.env[k];
  }
}

// claims decodes a JWT's payload (no verification: the token service's
// signature is checked by the Go side's tests; here we check what it says).
export function claims(token) {
  const parts = token.split(".");
  if (parts.length !== 3) throw new Error(`not a JWT: ${parts.length} parts`);
  return JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
}
