package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/apply"
	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/sts"
)

// identityFlags name an identity the way az does.
type identityFlags struct {
	name, resourceGroup, subscription string
}

func (i *identityFlags) add(cmd *cobra.Command, nameFlag, nameHelp string, needName bool) {
	f := cmd.Flags()
	f.StringVarP(&i.name, nameFlag, "n", "", nameHelp)
	f.StringVarP(&i.resourceGroup, "resource-group", "g", "", "resource group")
	f.StringVar(&i.subscription, "subscription", apply.DefaultSubscriptionID, "subscription id")
	_ = cmd.MarkFlagRequired("resource-group")
	if needName {
		_ = cmd.MarkFlagRequired(nameFlag)
	}
}

func newIdentityCommand(streams Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "identity",
		Short: "Manage user-assigned managed identities (like az identity)",
	}
	af := addAdminFlags(cmd)
	cmd.AddCommand(newIdentityCreate(streams, af), newIdentityUpdate(streams, af), newIdentityShow(streams, af), newIdentityList(streams, af),
		newIdentityDelete(streams, af), newFederatedCredentialCommand(streams, af))
	return cmd
}

// identityView is an identity as az prints it: ARM's properties flattened.
type identityView struct {
	ClientID      string            `json:"clientId"`
	ID            string            `json:"id"`
	Location      string            `json:"location"`
	Name          string            `json:"name"`
	PrincipalID   string            `json:"principalId"`
	ResourceGroup string            `json:"resourceGroup"`
	Tags          map[string]string `json:"tags"`
	TenantID      string            `json:"tenantId"`
	Type          string            `json:"type"`
}

func viewIdentity(m admin.IdentityResource) identityView {
	v := identityView{ID: m.ID, Location: m.Location, Name: m.Name, ResourceGroup: m.ResourceGroup, Tags: m.Tags, Type: m.Type}
	if v.Tags == nil {
		v.Tags = map[string]string{}
	}
	if m.Properties != nil {
		v.ClientID, v.PrincipalID, v.TenantID = m.Properties.ClientID, m.Properties.PrincipalID, m.Properties.TenantID
	}
	return v
}

func viewIdentities(ms []admin.IdentityResource) []identityView {
	out := make([]identityView, len(ms))
	for i, m := range ms {
		out[i] = viewIdentity(m)
	}
	return out
}

// credentialView is a federated credential as az prints it.
type credentialView struct {
	Audiences                []string                            `json:"audiences"`
	ClaimsMatchingExpression *directory.ClaimsMatchingExpression `json:"claimsMatchingExpression,omitempty"`
	Description              string                              `json:"description,omitempty"`
	ID                       string                              `json:"id"`
	Issuer                   string                              `json:"issuer"`
	LastUsed                 *time.Time                          `json:"lastUsedDateTime,omitempty"`
	Name                     string                              `json:"name"`
	ResourceGroup            string                              `json:"resourceGroup"`
	Subject                  string                              `json:"subject"`
	Type                     string                              `json:"type"`
}

func viewCredential(f admin.IdentityCredentialResource) credentialView {
	v := credentialView{ID: f.ID, Name: f.Name, ResourceGroup: f.ResourceGroup, Type: f.Type}
	if p := f.Properties; p != nil {
		v.Audiences, v.ClaimsMatchingExpression, v.Description, v.Issuer, v.Subject, v.LastUsed = p.Audiences, p.ClaimsMatchingExpression, p.Description, p.Issuer, p.Subject, p.LastUsed
	}
	return v
}

func viewCredentials(fs []admin.IdentityCredentialResource) []credentialView {
	out := make([]credentialView, len(fs))
	for i, f := range fs {
		out[i] = viewCredential(f)
	}
	return out
}

func identityTable(items ...admin.IdentityResource) func() table {
	return func() table {
		t := table{headers: []string{"Name", "ResourceGroup", "Location", "ClientId", "PrincipalId"}}
		for _, m := range items {
			var p admin.IdentityProperties
			if m.Properties != nil {
				p = *m.Properties
			}
			t.rows = append(t.rows, []string{m.Name, m.ResourceGroup, m.Location, p.ClientID, p.PrincipalID})
		}
		return t
	}
}

// connect returns the client and tenant for a command.
func connect(ctx context.Context, af *adminFlags) (*admin.Client, string, error) {
	c, err := af.client(ctx)
	if err != nil {
		return nil, "", err
	}
	tid, err := af.tenantID(ctx, c)
	if err != nil {
		return nil, "", err
	}
	return c, tid, nil
}

// withAdmin is the RunE of a command that talks to the admin API: it
// connects (client and tenant from the flags), then hands both to call.
func withAdmin(af *adminFlags, call func(ctx context.Context, c *admin.Client, tid string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		c, tid, err := connect(ctx, af)
		if err != nil {
			return err
		}
		return call(ctx, c, tid)
	}
}

func newIdentityCreate(streams Streams, af *adminFlags) *cobra.Command {
	var id identityFlags
	var location string
	var tags []string
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create (or update) a user-assigned managed identity",
		Args:  cobra.NoArgs,
		RunE: withAdmin(af, func(ctx context.Context, c *admin.Client, tid string) error {
			in := admin.IdentityResource{Location: location}
			if len(tags) > 0 {
				in.Tags = parseTags(tags)
			}
			m, err := c.PutIdentity(ctx, tid, id.subscription, id.resourceGroup, id.name, in)
			if err != nil {
				return err
			}
			return af.print(streams.Out, viewIdentity(m), identityTable(m))
		}),
	}
	id.add(cmd, "name", "identity name", true)
	cmd.Flags().StringVarP(&location, "location", "l", "", "location (informational)")
	cmd.Flags().StringSliceVar(&tags, "tags", nil, "space- or comma-separated key=value tags")
	return cmd
}

func newIdentityShow(streams Streams, af *adminFlags) *cobra.Command {
	var id identityFlags
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show a managed identity",
		Args:  cobra.NoArgs,
		RunE: withAdmin(af, func(ctx context.Context, c *admin.Client, tid string) error {
			m, err := c.GetIdentity(ctx, tid, id.subscription, id.resourceGroup, id.name)
			if err != nil {
				return err
			}
			return af.print(streams.Out, viewIdentity(m), identityTable(m))
		}),
	}
	id.add(cmd, "name", "identity name", true)
	return cmd
}

func newIdentityList(streams Streams, af *adminFlags) *cobra.Command {
	var rg, sub string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List managed identities (of a resource group, or of the subscription)",
		Args:  cobra.NoArgs,
		RunE: withAdmin(af, func(ctx context.Context, c *admin.Client, tid string) error {
			ms, err := c.ListIdentities(ctx, tid, sub, rg)
			if err != nil {
				return err
			}
			if ms == nil {
				ms = []admin.IdentityResource{}
			}
			return af.print(streams.Out, viewIdentities(ms), identityTable(ms...))
		}),
	}
	cmd.Flags().StringVarP(&rg, "resource-group", "g", "", "resource group (default: all)")
	cmd.Flags().StringVar(&sub, "subscription", apply.DefaultSubscriptionID, "subscription id")
	return cmd
}

func newIdentityDelete(streams Streams, af *adminFlags) *cobra.Command {
	var id identityFlags
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete a managed identity with its federated credentials and role assignments",
		Args:  cobra.NoArgs,
		RunE: withAdmin(af, func(ctx context.Context, c *admin.Client, tid string) error {
			return c.DeleteIdentity(ctx, tid, id.subscription, id.resourceGroup, id.name)
		}),
	}
	id.add(cmd, "name", "identity name", true)
	return cmd
}

func newFederatedCredentialCommand(streams Streams, af *adminFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "federated-credential",
		Short: "Manage an identity's federated identity credentials (like az identity federated-credential)",
	}
	cmd.AddCommand(newFICCreate(streams, af), newFICUpdate(streams, af), newFICShow(streams, af), newFICList(streams, af), newFICDelete(streams, af),
		newFICTest(streams, af))
	return cmd
}

func newFICTest(streams Streams, af *adminFlags) *cobra.Command {
	var id identityFlags
	var file string
	cmd := &cobra.Command{
		Use:   "test",
		Short: "Dry-run an exchange of a platform token for the identity: every check's verdict and the exact differences; no token is issued",
		Long: `Dry-run an exchange of a platform token (a Kubernetes service-account token, a
CI job's OIDC token) for the identity, as the token endpoint would run it: the
token's form and times, each federated credential's issuer, audience and
subject (or claims expression), the issuer's keys and the signature. Every
verdict is printed, with the exact difference where one fails; no token is
issued. Exit status 1 when the exchange would be refused. Use it before a
credential is changed, and after, with a real token of the workload.`,
		Example: `  kubectl create token payments -n prod --audience api://AzureADTokenExchange > sa.jwt
  wif identity federated-credential test --identity-name payments -g prod --assertion-file sa.jwt`,
		Args: cobra.NoArgs,
		RunE: withAdmin(af, func(ctx context.Context, c *admin.Client, tid string) error {
			assertion, err := readAssertionFile(streams, file)
			if err != nil {
				return err
			}
			res, err := c.TestIdentityCredentials(ctx, tid, id.subscription, id.resourceGroup, id.name, assertion)
			if err != nil {
				return err
			}
			return printTest(streams, af, res, fmt.Sprintf("managed identity %q", id.name))
		}),
	}
	id.add(cmd, "identity-name", "name of the managed identity", true)
	cmd.Flags().StringVar(&file, "assertion-file", "", "file holding the platform token to try (- for standard input)")
	_ = cmd.MarkFlagRequired("assertion-file")
	return cmd
}

// readAssertionFile reads a token from a file (or stdin for "-"), bounded.
func readAssertionFile(streams Streams, file string) (string, error) {
	var r io.Reader
	if file == "-" {
		r = streams.In
	} else {
		f, err := os.Open(file)
		if err != nil {
			return "", fmt.Errorf("--assertion-file: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, 64<<10))
	if err != nil {
		return "", fmt.Errorf("--assertion-file: %w", err)
	}
	if strings.TrimSpace(string(b)) == "" {
		return "", errors.New("--assertion-file is empty: give the platform token (a JWT) to try")
	}
	return strings.TrimSpace(string(b)), nil
}

// errTestFailed makes the command exit 1 after printing a refusal.
var errTestFailed = errors.New("the exchange would be refused")

// printTest prints a dry-run's result and fails when it would be refused.
func printTest(streams Streams, af *adminFlags, res sts.TestResult, what string) error {
	if af.output != "table" || af.query != "" {
		if err := af.print(streams.Out, res, nil); err != nil {
			return err
		}
	} else {
		verdict := "PASS: an exchange would succeed"
		if res.Result != "pass" {
			verdict = fmt.Sprintf("FAIL: an exchange would be refused with AADSTS%d %s", res.Code, res.Error)
		}
		fmt.Fprintf(streams.Out, "Dry run for %s: %s\n", what, verdict)
		writeDiagnosis(streams.Out, &res.Diagnosis, "")
	}
	if res.Result != "pass" {
		return errTestFailed
	}
	return nil
}

func ficTable(items ...admin.IdentityCredentialResource) func() table {
	return func() table {
		t := table{headers: []string{"Name", "Issuer", "Subject", "Audiences", "LastUsed"}}
		for _, f := range items {
			p := f.Properties
			if p == nil {
				p = &admin.CredentialProperties{}
			}
			subj := p.Subject
			if p.ClaimsMatchingExpression != nil {
				subj = "claims: " + p.ClaimsMatchingExpression.Value
			}
			t.rows = append(t.rows, []string{f.Name, p.Issuer, subj, strings.Join(p.Audiences, ","), lastUsedText(p.LastUsed)})
		}
		return t
	}
}

func newFICCreate(streams Streams, af *adminFlags) *cobra.Command {
	var id identityFlags
	var identityName, issuer, subject, description, expr string
	var audiences []string
	var skipCheck bool
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create (or update) a federated identity credential",
		Long: `Create (or update) a federated identity credential: trust tokens from --issuer
for --subject. Before creating it, wif fetches the issuer's discovery document
(when reachable) and warns when the issuer it names differs from --issuer
(the classic missing or extra trailing slash), since tokens would then never match.`,
		Args: cobra.NoArgs,
		RunE: withAdmin(af, func(ctx context.Context, c *admin.Client, tid string) error {
			cme, err := subjectOrExpression(subject, expr)
			if err != nil {
				return err
			}
			if err := warnIssuer(ctx, af, streams.ErrOut, issuer, skipCheck); err != nil {
				return err
			}
			f, err := c.PutIdentityCredential(ctx, tid, id.subscription, id.resourceGroup, identityName, id.name,
				admin.CredentialProperties{Issuer: issuer, Subject: subject, ClaimsMatchingExpression: cme, Audiences: audiences, Description: description})
			if err != nil {
				return err
			}
			return af.print(streams.Out, viewCredential(f), ficTable(f))
		}),
	}
	id.add(cmd, "name", "credential name", true)
	f := cmd.Flags()
	f.StringVar(&identityName, "identity-name", "", "name of the managed identity")
	f.StringVar(&issuer, "issuer", "", "the issuer URL, exactly as its tokens carry it in iss")
	f.StringVar(&subject, "subject", "", "the subject, e.g. system:serviceaccount:<namespace>:<name>")
	f.StringVar(&expr, "claims-matching-expression", "", "instead of --subject: a claims expression (language version 1), e.g. \"claims['sub'] matches 'repo:contoso/*:environment:prod'\"")
	f.StringSliceVar(&audiences, "audiences", []string{directory.DefaultAudience}, "the audience the tokens carry")
	f.StringVar(&description, "description", "", "description")
	f.BoolVar(&skipCheck, "skip-issuer-check", false, "do not fetch the issuer's discovery document")
	_ = cmd.MarkFlagRequired("identity-name")
	_ = cmd.MarkFlagRequired("issuer")
	return cmd
}

// warnIssuer writes checkIssuer's warning, if any, to errOut before a
// federated credential trusting issuer is created; skip (--skip-issuer-check)
// turns the fetch off.
func warnIssuer(ctx context.Context, af *adminFlags, errOut io.Writer, issuer string, skip bool) error {
	if skip {
		return nil
	}
	hc, err := af.httpClient(3 * time.Second)
	if err != nil {
		return err
	}
	if w := checkIssuer(ctx, hc, issuer); w != "" {
		fmt.Fprintln(errOut, w)
	}
	return nil
}

// checkIssuer fetches {issuer}/.well-known/openid-configuration and returns
// a warning when the document's issuer differs from the given one, or ""
// when they agree or the document cannot be fetched (an issuer need not be
// reachable from here).
func checkIssuer(ctx context.Context, hc *http.Client, issuer string) string {
	if !strings.HasPrefix(issuer, "https://") {
		return ""
	}
	u := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return ""
	}
	resp, err := hc.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	var doc struct {
		Issuer string `json:"issuer"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc); err != nil || doc.Issuer == "" || doc.Issuer == issuer {
		return ""
	}
	hint := ""
	switch {
	case doc.Issuer == issuer+"/":
		hint = " (a missing trailing slash)"
	case doc.Issuer+"/" == issuer:
		hint = " (an extra trailing slash)"
	}
	return fmt.Sprintf("WARNING: the issuer's discovery document (%s) names its issuer %q, but --issuer is %q%s.\n"+
		"Tokens from this issuer carry iss %q and will not match this credential; the exchange will fail with AADSTS700211.\n"+
		"Fix: use --issuer %s", u, doc.Issuer, issuer, hint, doc.Issuer, doc.Issuer)
}

func newFICShow(streams Streams, af *adminFlags) *cobra.Command {
	var id identityFlags
	var identityName string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show a federated identity credential",
		Args:  cobra.NoArgs,
		RunE: withAdmin(af, func(ctx context.Context, c *admin.Client, tid string) error {
			f, err := c.GetIdentityCredential(ctx, tid, id.subscription, id.resourceGroup, identityName, id.name)
			if err != nil {
				return err
			}
			return af.print(streams.Out, viewCredential(f), ficTable(f))
		}),
	}
	id.add(cmd, "name", "credential name", true)
	cmd.Flags().StringVar(&identityName, "identity-name", "", "name of the managed identity")
	_ = cmd.MarkFlagRequired("identity-name")
	return cmd
}

func newFICList(streams Streams, af *adminFlags) *cobra.Command {
	var id identityFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List an identity's federated identity credentials",
		Args:  cobra.NoArgs,
		RunE: withAdmin(af, func(ctx context.Context, c *admin.Client, tid string) error {
			fs, err := c.ListIdentityCredentials(ctx, tid, id.subscription, id.resourceGroup, id.name)
			if err != nil {
				return err
			}
			if fs == nil {
				fs = []admin.IdentityCredentialResource{}
			}
			return af.print(streams.Out, viewCredentials(fs), ficTable(fs...))
		}),
	}
	id.add(cmd, "identity-name", "name of the managed identity", true)
	return cmd
}

func newFICDelete(streams Streams, af *adminFlags) *cobra.Command {
	var id identityFlags
	var identityName string
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete a federated identity credential",
		Args:  cobra.NoArgs,
		RunE: withAdmin(af, func(ctx context.Context, c *admin.Client, tid string) error {
			return c.DeleteIdentityCredential(ctx, tid, id.subscription, id.resourceGroup, identityName, id.name)
		}),
	}
	id.add(cmd, "name", "credential name", true)
	cmd.Flags().StringVar(&identityName, "identity-name", "", "name of the managed identity")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not prompt (accepted for az compatibility; wif never prompts)")
	_ = cmd.MarkFlagRequired("identity-name")
	return cmd
}

// lastUsedText is a credential's last use for a table: "never" when no
// exchange has matched it (since wif began recording use).
func lastUsedText(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}
