package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/jmespath/go-jmespath"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"

	"github.com/wif-project/wif/internal/admin"
)

// adminFlags are the flags every directory command shares: where the token
// service is, which tenant, how to authenticate, and how to print.
type adminFlags struct {
	server, tenant, caFile string
	clientID, tokenFile    string
	login                  string
	output, query          string
	// lookup is the command's environment, set by client.
	lookup func(string) (string, bool)
}

// addAdminFlags registers the shared flags as persistent flags of a
// top-level command, so each is also settable as WIF_<FLAG>.
func addAdminFlags(cmd *cobra.Command) *adminFlags {
	f := &adminFlags{}
	if cmd.Name() != "tenant" { // wif tenant's own --tenant-id names the tenant to act on
		cmd.SetGlobalNormalizationFunc(flagAliases(map[string]string{
			"tenant-id": "tenant", "authority-host": "server", "token-file": "federated-token-file"}))
	}
	p := cmd.PersistentFlags()
	p.StringVar(&f.server, "server", "https://127.0.0.1:8443", "the wif token service's URL (env WIF_SERVER)")
	p.StringVar(&f.tenant, "tenant", "", "tenant id (env WIF_TENANT; default $AZURE_TENANT_ID when authenticating, else the server's only tenant)")
	p.StringVar(&f.caFile, "ca-file", "", "PEM bundle of CAs to trust besides the system's")
	p.StringVar(&f.clientID, "client-id", "", "authenticate as this identity's client id (default $AZURE_CLIENT_ID)")
	p.StringVar(&f.login, "login", "auto", "auto: authenticate as --client-id or $AZURE_CLIENT_ID when set; none: send no token (wif dev's env file sets WIF_LOGIN=none: its AZURE_CLIENT_ID is the demo workload's, and loopback calls need no token)")
	p.StringVar(&f.tokenFile, "federated-token-file", "", "file holding the identity's federated token (default $AZURE_FEDERATED_TOKEN_FILE)")
	p.StringVarP(&f.output, "output", "o", "table", "output format: table, json, yaml, tsv or none")
	p.StringVar(&f.query, "query", "", "JMESPath query applied to the result, as in az (e.g. --query clientId -o tsv on show, --query '[].name' on list)")
	_ = cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"table", "json", "yaml", "tsv", "none"}, cobra.ShellCompDirectiveNoFileComp
	})
	return f
}

// flagAliases accepts the names other commands use for the same concept
// (token get's --tenant-id, --authority-host, --token-file for the admin
// commands' --tenant, --server, --federated-token-file, and back), so one
// habit works everywhere; help shows one name.
func flagAliases(aliases map[string]string) func(*pflag.FlagSet, string) pflag.NormalizedName {
	return func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if to, ok := aliases[name]; ok {
			return pflag.NormalizedName(to)
		}
		return pflag.NormalizedName(name)
	}
}

// httpClient trusts the system roots plus --ca-file.
func (f *adminFlags) httpClient(timeout time.Duration) (*http.Client, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return nil, fmt.Errorf("read --ca-file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s holds no PEM certificate", f.caFile)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: trustHint{tr}, Timeout: timeout}, nil
}

// env reads the environment the command runs in (RunWithEnv's). Commands
// read AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE and AZURE_TENANT_ID,
// the names the Azure Workload Identity webhook injects, so a pod can run
// wif unconfigured.
func (f *adminFlags) env(name string) string {
	if f.lookup == nil {
		return ""
	}
	v, _ := f.lookup(name)
	return v
}

func (f *adminFlags) envOr(v, name string) string {
	if v != "" {
		return v
	}
	return f.env(name)
}

// trustHint wraps a transport so that a certificate the CLI does not
// trust says how to trust it.
type trustHint struct{ rt http.RoundTripper }

func (t trustHint) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(r)
	var ue x509.UnknownAuthorityError
	var he x509.HostnameError
	var ce x509.CertificateInvalidError
	if err != nil && (errors.As(err, &ue) || errors.As(err, &he) || errors.As(err, &ce) || strings.Contains(err.Error(), "x509:")) {
		return nil, fmt.Errorf("%w (the server's certificate is not trusted: for wif dev, load its environment (. .wif/env sets WIF_CA_FILE); otherwise pass --ca-file with the server's CA)", err)
	}
	return resp, err
}

// client builds the admin API client, authenticating with a workload
// identity when one is configured: the federated token is exchanged for a
// token for api://wif-admin by the real Azure SDK (ClientAssertionCredential)
// against the same server.
func (f *adminFlags) client(ctx context.Context) (*admin.Client, error) {
	if !strings.HasPrefix(f.server, "https://") {
		return nil, fmt.Errorf("--server must be an https URL, not %q", f.server)
	}
	hc, err := f.httpClient(30 * time.Second)
	if err != nil {
		return nil, err
	}
	f.lookup = lookupEnvFrom(ctx)
	c := &admin.Client{BaseURL: strings.TrimSuffix(f.server, "/"), HTTPClient: hc}
	clientID, tokenFile := f.clientID, f.tokenFile
	switch f.login {
	case "none":
		return c, nil
	case "auto", "":
	default:
		return nil, fmt.Errorf("--login must be auto or none, not %q", f.login)
	}
	if clientID == "" {
		// A pod's injected workload identity (or an admin's exported
		// one, say through kubectl port-forward to 127.0.0.1).
		clientID, tokenFile = f.env("AZURE_CLIENT_ID"), f.envOr(tokenFile, "AZURE_FEDERATED_TOKEN_FILE")
	}
	if clientID == "" {
		return c, nil
	}
	if tokenFile == "" {
		return nil, errors.New("a client id is set but no federated token file: set --federated-token-file or AZURE_FEDERATED_TOKEN_FILE")
	}
	tenant := f.tenant
	if tenant == "" {
		tenant = f.env("AZURE_TENANT_ID")
	}
	if tenant == "" {
		return nil, errors.New("authenticating with a workload identity needs its tenant: --tenant, WIF_TENANT or AZURE_TENANT_ID")
	}
	// The tenant the token came from is the one commands act in, unless
	// --tenant says otherwise.
	if f.tenant == "" {
		f.tenant = tenant
	}
	cred, err := azidentity.NewClientAssertionCredential(tenant, clientID, func(context.Context) (string, error) {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return "", fmt.Errorf("read federated token file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}, &azidentity.ClientAssertionCredentialOptions{
		ClientOptions: azcore.ClientOptions{
			Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: c.BaseURL + "/"},
			Transport: hc,
		},
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		return nil, fmt.Errorf("workload identity credential: %w", err)
	}
	c.Token = func(ctx context.Context) (string, error) {
		tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{admin.AdminResource + "/.default"}})
		return tok.Token, err
	}
	return c, nil
}

// clientAndTenant is client and tenantID, for the commands that act in
// one tenant.
func (f *adminFlags) clientAndTenant(ctx context.Context) (*admin.Client, string, error) {
	c, err := f.client(ctx)
	if err != nil {
		return nil, "", err
	}
	tid, err := f.tenantID(ctx, c)
	return c, tid, err
}

// tenantID returns --tenant, or the server's only tenant.
func (f *adminFlags) tenantID(ctx context.Context, c *admin.Client) (string, error) {
	if f.tenant != "" {
		return f.tenant, nil
	}
	ts, err := c.ListTenants(ctx)
	if err != nil {
		return "", err
	}
	if len(ts) != 1 {
		return "", fmt.Errorf("the server has %d tenants: choose one with --tenant (or WIF_TENANT)", len(ts))
	}
	return ts[0].ID, nil
}

// table is a human rendering: column headers and rows.
type table struct {
	headers []string
	rows    [][]string
}

// print renders v as --output asks, after --query. tbl renders the
// unqueried value as a table; when nil (or with --query) the table is
// derived from the value's scalar fields.
func (f *adminFlags) print(w io.Writer, v any, tbl func() table) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	generic, err := decodeOrdered(data)
	if err != nil {
		return err
	}
	if f.query != "" {
		plain, err := decodePlain(data)
		if err != nil {
			return err
		}
		res, err := jmespath.Search(f.query, plain)
		if err != nil {
			return fmt.Errorf("--query %q: %w", f.query, err)
		}
		// Re-decode ordered: JMESPath returns plain maps, so key order of
		// objects follows the original where possible (sorted otherwise).
		b, _ := json.Marshal(res)
		generic, _ = decodeOrdered(b)
		tbl = nil
	}
	switch f.output {
	case "json", "jsonc":
		b, err := json.MarshalIndent(generic, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case "yaml":
		b, err := json.Marshal(generic)
		if err != nil {
			return err
		}
		y, err := yaml.JSONToYAML(b)
		if err != nil {
			return err
		}
		_, err = w.Write(y)
		return err
	case "tsv":
		return writeTSV(w, generic)
	case "table", "":
		var t table
		if tbl != nil {
			t = tbl()
		} else {
			t = genericTable(generic)
		}
		return writeTable(w, t)
	case "none":
		return nil
	}
	return fmt.Errorf("--output must be table, json, yaml, tsv or none, not %q", f.output)
}

// orderedMap is a JSON object that remembers its key order.
type orderedMap struct {
	keys []string
	vals map[string]any
}

// MarshalJSON writes the keys in order.
func (m *orderedMap) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range m.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		vb, err := json.Marshal(m.vals[k])
		if err != nil {
			return nil, err
		}
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// decodePlain decodes for JMESPath, which compares numbers as float64.
func decodePlain(data []byte) (any, error) {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("decode output: %w", err)
	}
	return v, nil
}

func decodeOrdered(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := orderedValue(dec)
	if err != nil {
		return nil, fmt.Errorf("decode output: %w", err)
	}
	return v, nil
}

func orderedValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			m := &orderedMap{vals: map[string]any{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, _ := kt.(string)
				v, err := orderedValue(dec)
				if err != nil {
					return nil, err
				}
				if _, dup := m.vals[k]; !dup {
					m.keys = append(m.keys, k)
				}
				m.vals[k] = v
			}
			_, err := dec.Token()
			return m, err
		case '[':
			arr := []any{}
			for dec.More() {
				v, err := orderedValue(dec)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			_, err := dec.Token()
			return arr, err
		}
	}
	return tok, nil
}

// scalar renders a scalar as az's tsv and table do; ok is false for
// objects and arrays.
func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "", true
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		if x {
			return "True", true
		}
		return "False", true
	}
	return "", false
}

// writeTSV prints like az -o tsv: a scalar on its own line; each element of
// a list on its own line; an object's scalar fields tab-separated.
func writeTSV(w io.Writer, v any) error {
	line := func(v any) string {
		if s, ok := scalar(v); ok {
			return s
		}
		if m, ok := v.(*orderedMap); ok {
			var cols []string
			for _, k := range m.keys {
				if s, ok := scalar(m.vals[k]); ok {
					cols = append(cols, s)
				}
			}
			return strings.Join(cols, "\t")
		}
		if arr, ok := v.([]any); ok {
			var cols []string
			for _, e := range arr {
				if s, ok := scalar(e); ok {
					cols = append(cols, s)
				}
			}
			return strings.Join(cols, "\t")
		}
		return ""
	}
	var b strings.Builder
	if arr, ok := v.([]any); ok {
		for _, e := range arr {
			b.WriteString(line(e) + "\n")
		}
	} else {
		b.WriteString(line(v) + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// genericTable makes a table of the scalar fields of an object or list of
// objects, with az's capitalised headers.
func genericTable(v any) table {
	var items []any
	if arr, ok := v.([]any); ok {
		items = arr
	} else {
		items = []any{v}
	}
	var t table
	var keys []string
	seen := map[string]bool{}
	for _, it := range items {
		if m, ok := it.(*orderedMap); ok {
			for _, k := range m.keys {
				if _, ok := scalar(m.vals[k]); ok && !seen[k] {
					seen[k] = true
					keys = append(keys, k)
				}
			}
		}
	}
	if len(keys) == 0 {
		t.headers = []string{"Result"}
		for _, it := range items {
			s, _ := scalar(it)
			t.rows = append(t.rows, []string{s})
		}
		return t
	}
	for _, k := range keys {
		t.headers = append(t.headers, strings.ToUpper(k[:1])+k[1:])
	}
	for _, it := range items {
		m, ok := it.(*orderedMap)
		if !ok {
			continue
		}
		row := make([]string, len(keys))
		for i, k := range keys {
			row[i], _ = scalar(m.vals[k])
		}
		t.rows = append(t.rows, row)
	}
	return t
}

// writeTable prints a table like az: headers, a dashed rule, then rows.
func writeTable(w io.Writer, t table) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(t.headers, "\t"))
	rule := make([]string, len(t.headers))
	for i, h := range t.headers {
		width := len(h)
		for _, r := range t.rows {
			if i < len(r) && len([]rune(r[i])) > width {
				width = len([]rune(r[i]))
			}
		}
		rule[i] = strings.Repeat("-", width)
	}
	fmt.Fprintln(tw, strings.Join(rule, "\t"))
	for _, r := range t.rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// sortedKeys returns a map's keys in order.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
