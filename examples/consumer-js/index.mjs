// Calls a provider API as a managed identity, with no secret: the
// unmodified @azure/identity DefaultAzureCredential picks up the workload
// identity environment (AZURE_AUTHORITY_HOST, AZURE_TENANT_ID,
// AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE) that `wif dev` writes to
// .wif/env and that the Kubernetes webhook injects in a pod. Node trusts the
// dev CA through NODE_EXTRA_CA_CERTS, also in .wif/env.
//
//   . .wif/env && npm install && node index.mjs [URL]
import { DefaultAzureCredential } from "@azure/identity";

const url = process.argv[2] ?? process.env.WIF_GATEWAY_URL ?? process.env.WIF_DEMO_API_URL;
if (!url) {
  console.error("no API URL: give one, or load the environment of `wif dev` (. .wif/env)");
  process.exit(1);
}

// The one change from Entra-only code: without it MSAL asks
// login.microsoftonline.com whether the authority host is a known cloud,
// and refuses wif's.
const credential = new DefaultAzureCredential({ disableInstanceDiscovery: true });

const { token } = await credential.getToken("api://provider-api/.default");
const res = await fetch(url, { headers: { Authorization: `Bearer ${token}` } });
console.log(res.status, res.statusText, url);
console.log(await res.text());
process.exit(res.ok ? 0 : 1);
