package doctor

import (
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/stsclient"
)

// workload is what the environment says the workload is.
type workload struct {
	clientID, tenantID, tokenFile string
	// authority is AZURE_AUTHORITY_HOST when it is usable, with a trailing
	// '/'.
	authority string
	// pool is the trust the SDKs use: SSL_CERT_FILE instead of the system
	// roots when set (as Go, OpenSSL and Python's requests do).
	pool     *x509.CertPool
	caSource string
}

func (w *workload) httpClient(timeout time.Duration) *http.Client {
	c := stsclient.NewHTTPClient(w.pool)
	c.Timeout = timeout
	return c
}

// trustFix is the fix for a certificate the workload does not trust.
func (w *workload) trustFix() string {
	return "the certificate is not trusted by " + w.caSource + ": set SSL_CERT_FILE to a PEM bundle holding its CA (after `wif dev`: . .wif/env sets .wif/ca-bundle.pem)"
}

func checkEnv(r *Report, cfg Config) *workload {
	w := &workload{caSource: "the system roots"}
	env := func(name string) string {
		v, _ := cfg.LookupEnv(name)
		return strings.TrimSpace(v)
	}
	const s = SectionEnv
	notSet := func(name, what, fix string) {
		r.add(s, name, Fail, "not set: "+what, fix)
	}

	if v := env("AZURE_CLIENT_ID"); v == "" {
		notSet("AZURE_CLIENT_ID", "the SDK does not know which identity to be",
			"in Kubernetes: annotate the service account azure.workload.identity/client-id and label the pod azure.workload.identity/use: \"true\"; elsewhere: export AZURE_CLIENT_ID=<client id> (after `wif dev`: . .wif/env)")
	} else if !directory.IsGUID(v) {
		r.add(s, "AZURE_CLIENT_ID", Fail, fmt.Sprintf("%q is not a GUID: the token service will answer AADSTS700016", clip(v)),
			"use the managed identity's client id (wif identity show -n NAME -g GROUP --query clientId -o tsv), not its name or principal id")
	} else {
		w.clientID = v
		r.add(s, "AZURE_CLIENT_ID", Pass, v, "")
	}

	if v := env("AZURE_TENANT_ID"); v == "" {
		notSet("AZURE_TENANT_ID", "the SDK does not know which tenant's token endpoint to call",
			"export AZURE_TENANT_ID=<tenant id> (the webhook injects it from its --tenant-id)")
	} else if !directory.IsGUID(v) {
		r.add(s, "AZURE_TENANT_ID", Fail, fmt.Sprintf("%q is not a GUID: wif names tenants by id (AADSTS90002 for anything else)", clip(v)),
			"use the tenant id (wif dev prints it; wif tenant list)")
	} else {
		w.tenantID = v
		r.add(s, "AZURE_TENANT_ID", Pass, v, "")
	}

	if v := env("AZURE_FEDERATED_TOKEN_FILE"); v == "" {
		notSet("AZURE_FEDERATED_TOKEN_FILE", "WorkloadIdentityCredential has no token to present",
			"in Kubernetes: label the pod azure.workload.identity/use: \"true\" so the webhook mounts the token; elsewhere: export AZURE_FEDERATED_TOKEN_FILE=<path> (wif dev writes .wif/token)")
	} else {
		w.tokenFile = v
		r.add(s, "AZURE_FEDERATED_TOKEN_FILE", Pass, v, "")
	}

	checkAuthority(r, w, env("AZURE_AUTHORITY_HOST"))

	for _, name := range []string{"AZURE_REGIONAL_AUTHORITY_NAME", "MSAL_FORCE_REGION"} {
		if v := env(name); v != "" {
			r.add(s, name, Fail, fmt.Sprintf("set to %q: MSAL sends the exchange to a regional Entra endpoint (%s.login.microsoft.com), not to AZURE_AUTHORITY_HOST", clip(v), clip(v)),
				"unset "+name)
		} else {
			r.add(s, name, Pass, "not set", "")
		}
	}

	ep, hdr := env("IDENTITY_ENDPOINT"), env("IDENTITY_HEADER")
	switch {
	case ep == "" && hdr == "":
		r.add(s, "IDENTITY_ENDPOINT", Skip, "not set (no App Service managed-identity endpoint; not needed for workload identity)", "")
	case ep == "" || hdr == "":
		missing := "IDENTITY_HEADER"
		if ep == "" {
			missing = "IDENTITY_ENDPOINT"
		}
		r.add(s, "IDENTITY_ENDPOINT", Fail, missing+" is not set while its pair is: ManagedIdentityCredential cannot call the endpoint",
			"set both IDENTITY_ENDPOINT and IDENTITY_HEADER (wif imds prints them), or neither")
	default:
		if u, err := url.Parse(ep); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			r.add(s, "IDENTITY_ENDPOINT", Fail, fmt.Sprintf("%q is not an http(s) URL", clip(ep)), "set it to the managed-identity endpoint's URL (wif imds prints it)")
		} else {
			r.add(s, "IDENTITY_ENDPOINT", Pass, ep+" (with IDENTITY_HEADER)", "")
		}
	}

	if f := env("SSL_CERT_FILE"); f == "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		w.pool = pool
		r.add(s, "SSL_CERT_FILE", Pass, "not set: the system roots are trusted", "")
	} else {
		data, err := os.ReadFile(f)
		pool := x509.NewCertPool()
		switch {
		case err != nil:
			r.add(s, "SSL_CERT_FILE", Fail, fmt.Sprintf("cannot read %s: %v", f, errText(err)), "point SSL_CERT_FILE at a readable PEM bundle, or unset it")
			w.pool = pool
		case !pool.AppendCertsFromPEM(data):
			r.add(s, "SSL_CERT_FILE", Fail, f+" holds no PEM certificate", "point SSL_CERT_FILE at a PEM bundle (-----BEGIN CERTIFICATE-----)")
			w.pool = pool
		default:
			w.pool = pool
			r.add(s, "SSL_CERT_FILE", Pass, fmt.Sprintf("%s (it replaces the system roots)", f), "")
		}
		w.caSource = "SSL_CERT_FILE (" + f + ")"
	}
	return w
}

// checkAuthority checks AZURE_AUTHORITY_HOST as the SDKs use it: the base
// to which they append "{tenant}/oauth2/v2.0/token".
func checkAuthority(r *Report, w *workload, v string) {
	const s, name = SectionEnv, "AZURE_AUTHORITY_HOST"
	if v == "" {
		r.add(s, name, Fail, "not set: the SDKs call Entra ID (https://login.microsoftonline.com/), not wif",
			"export AZURE_AUTHORITY_HOST=https://<token service host>/ (the webhook injects its --authority-host)")
		return
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		r.add(s, name, Fail, fmt.Sprintf("%q is not a URL", clip(v)), "set it to the token service's base URL, such as https://wif.example.com/")
		return
	}
	if u.Scheme != "https" {
		r.add(s, name, Fail, fmt.Sprintf("%q is not https: the Azure SDKs refuse an authority over %s", clip(v), u.Scheme),
			"serve the token service over TLS and use https://"+u.Host+"/")
		return
	}
	if u.RawQuery != "" || u.Fragment != "" {
		r.add(s, name, Fail, fmt.Sprintf("%q has a query or fragment", clip(v)), "use https://"+u.Host+"/")
		return
	}
	if p := strings.TrimSuffix(u.Path, "/"); p != "" {
		r.add(s, name, Fail, fmt.Sprintf("%q has a path (%s): the SDKs append /{tenant}/oauth2/v2.0/token to it and the token service answers 404", clip(v), p),
			"use the host root: https://"+u.Host+"/")
		return
	}
	w.authority = "https://" + u.Host + "/"
	if !strings.HasSuffix(v, "/") {
		r.add(s, name, Warn, v+" has no trailing '/': the Azure SDKs for Go, JavaScript and Python add one, older tools may not",
			"use "+w.authority+" (as the webhook injects it)")
		return
	}
	r.add(s, name, Pass, v, "")
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// errText is an error without Go's "open <path>: " prefix repeated.
func errText(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}
