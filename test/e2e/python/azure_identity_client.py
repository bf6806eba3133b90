# The README's Python recipe, verbatim: azure-identity's
# DefaultAzureCredential reads the workload identity environment (.wif/env)
# and calls the API behind the gateway with requests.
import os
import sys

import requests
from azure.identity import DefaultAzureCredential

credential = DefaultAzureCredential()
token = credential.get_token("api://provider-api/.default")
r = requests.get(os.environ["WIF_GATEWAY_URL"], headers={"Authorization": "Bearer " + token.token})
print(r.status_code, r.text)
sys.exit(0 if r.status_code == 200 else 1)
