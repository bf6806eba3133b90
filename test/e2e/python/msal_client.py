# The README's MSAL Python recipe: a confidential client whose credential
# is the federated token, with instance discovery off.
import os
import sys

import msal
import requests

app = msal.ConfidentialClientApplication(
    os.environ["AZURE_CLIENT_ID"],
    client_credential={"client_assertion": open(os.environ["AZURE_FEDERATED_TOKEN_FILE"]).read().strip()},
    authority=os.environ["AZURE_AUTHORITY_HOST"] + os.environ["AZURE_TENANT_ID"],
    instance_discovery=False,
)
result = app.acquire_token_for_client(scopes=["api://provider-api/.default"])
if "access_token" not in result:
    print(result.get("error"), result.get("error_description"))
    sys.exit(1)
r = requests.get(os.environ["WIF_GATEWAY_URL"], headers={"Authorization": "Bearer " + result["access_token"]})
print(r.status_code, r.text)
sys.exit(0 if r.status_code == 200 else 1)
