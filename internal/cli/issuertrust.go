package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/directory"
)

// readSource reads a file, or standard input for "-", up to 1 MiB (key
// sets and CA bundles are far smaller; the server takes at most 64 KiB).
func readSource(streams Streams, path string) ([]byte, error) {
	r, name := streams.In, "standard input"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		defer f.Close()
		r, name = f, path
	}
	b, err := io.ReadAll(io.LimitReader(r, 1<<20+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(b) > 1<<20 {
		return nil, fmt.Errorf("%s is larger than 1 MiB: not a key set or a CA bundle", name)
	}
	return b, nil
}

type issuerTrustFlags struct {
	name, issuer, keySource, jwksFile, caFile, pushClientID, description string
	algorithms                                                           []string
	maxLifetime, overlap                                                 time.Duration
	requireUse, allowPrivate                                             bool
}

func (f *issuerTrustFlags) register(cmd *cobra.Command, create bool) {
	fl := cmd.Flags()
	fl.StringVarP(&f.name, "name", "n", "", "the trusted issuer's name in the tenant (required)")
	fl.StringVar(&f.issuer, "issuer", "", "the issuer's URL, exactly as its tokens carry it in iss")
	fl.StringVar(&f.keySource, "key-source", "", "where its keys come from: discovery (fetched, the default), jwks (uploaded with --jwks-file) or pushed (kept current by wif cluster sync)")
	fl.StringVar(&f.jwksFile, "jwks-file", "", "the issuer's JSON Web Key Set, e.g. from kubectl get --raw /openid/v1/jwks ('-' reads standard input)")
	fl.StringVar(&f.caFile, "ca-bundle-file", "", "PEM certificates to trust for the issuer's discovery and key URLs (discovery only)")
	fl.StringSliceVar(&f.algorithms, "algorithms", nil, "the signature algorithms its tokens may use (default RS256 only, as Entra), e.g. RS256,ES256 for SPIFFE/SPIRE")
	fl.DurationVar(&f.maxLifetime, "max-token-lifetime", 0, "refuse its tokens that live longer than this (exp - iat), e.g. 1h (0: only the 25 h bound of every assertion)")
	fl.BoolVar(&f.requireUse, "require-key-use", false, `use only its keys that say "use": "sig"`)
	fl.BoolVar(&f.allowPrivate, "allow-private-addresses", false, "let discovery reach loopback, link-local and private addresses (the operator tenant's directory admins only)")
	fl.StringVar(&f.pushClientID, "push-client-id", "", "the client id of the identity that pushes its keys (pushed: the cluster's wif cluster sync)")
	fl.DurationVar(&f.overlap, "key-overlap", 0, "how long keys a push removes keep verifying (pushed; default 1h)")
	fl.StringVar(&f.description, "description", "", "a description")
	_ = cmd.MarkFlagRequired("name")
	if create {
		_ = cmd.MarkFlagRequired("issuer")
	}
}

// apply sets on r what the command line gives (on update, only the flags
// given).
func (f *issuerTrustFlags) apply(cmd *cobra.Command, streams Streams, r *admin.TrustedIssuerResource) error {
	changed := func(name string) bool { return cmd.Flags().Changed(name) }
	if changed("issuer") {
		r.Issuer = f.issuer
	}
	if changed("key-source") {
		r.KeySource = f.keySource
	}
	if changed("jwks-file") {
		b, err := readSource(streams, f.jwksFile)
		if err != nil {
			return err
		}
		if !json.Valid(b) {
			return fmt.Errorf("--jwks-file %s is not JSON: expected a JSON Web Key Set {\"keys\": [...]}", f.jwksFile)
		}
		r.JWKS = b
		if r.KeySource == "" {
			r.KeySource = string(directory.KeySourceJWKS)
		}
	}
	if changed("ca-bundle-file") {
		b, err := readSource(streams, f.caFile)
		if err != nil {
			return err
		}
		r.CABundle = string(b)
	}
	if changed("algorithms") {
		r.Algorithms = f.algorithms
	}
	if changed("max-token-lifetime") {
		r.MaxTokenLifetimeSeconds = int64(f.maxLifetime / time.Second)
	}
	if changed("require-key-use") {
		r.RequireKeyUse = f.requireUse
	}
	if changed("allow-private-addresses") {
		r.AllowPrivateAddresses = f.allowPrivate
	}
	if changed("push-client-id") {
		r.PushClientID = f.pushClientID
	}
	if changed("key-overlap") {
		r.KeyOverlapSeconds = int64(f.overlap / time.Second)
	}
	if changed("description") {
		r.Description = f.description
	}
	if r.KeySource == "" {
		r.KeySource = string(directory.KeySourceDiscovery)
	}
	return nil
}

// forPut is r as a PUT body: the read-only fields dropped.
func forPut(r admin.TrustedIssuerResource) admin.TrustedIssuerResource {
	r.TenantID, r.KeysUpdatedAt, r.Keys, r.SkippedKeys, r.RetiredKeys = "", nil, nil, nil, nil
	r.Version, r.CreatedAt, r.UpdatedAt = 0, nil, nil
	if r.KeySource == string(directory.KeySourcePushed) {
		r.JWKS = nil // the agent's; a PUT without jwks keeps them
	}
	return r
}

func trustedIssuerTable(ts ...admin.TrustedIssuerResource) func() table {
	return func() table {
		t := table{headers: []string{"Name", "Issuer", "KeySource", "Algorithms", "Keys", "KeysUpdated", "MaxLifetime"}}
		for _, r := range ts {
			algs := "RS256"
			if len(r.Algorithms) > 0 {
				algs = strings.Join(r.Algorithms, ",")
			}
			updated, life := "-", "-"
			if r.KeysUpdatedAt != nil {
				updated = r.KeysUpdatedAt.UTC().Format(time.RFC3339)
			}
			if r.MaxTokenLifetimeSeconds > 0 {
				life = (time.Duration(r.MaxTokenLifetimeSeconds) * time.Second).String()
			}
			keys := "fetched"
			if r.KeySource != string(directory.KeySourceDiscovery) {
				keys = strconv.Itoa(len(r.Keys))
				if n := len(r.RetiredKeys); n > 0 {
					keys += fmt.Sprintf(" (+%d retiring)", n)
				}
			}
			t.rows = append(t.rows, []string{r.Name, r.Issuer, r.KeySource, algs, keys, updated, life})
		}
		return t
	}
}

func newIssuerTrustCommand(streams Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "issuer-trust",
		Short: "Manage a tenant's trusted issuers: where an issuer's keys come from (discovery, an uploaded JWKS, pushed by wif cluster sync) and what its tokens may be",
		Long: `A trusted issuer holds a tenant's settings for one issuer of platform tokens.
Federated credentials still name the issuer by URL; an issuer with no trusted
issuer is fetched by discovery and accepts RS256 only, as in Entra.

  discovery  {issuer}/.well-known/openid-configuration and its jwks_uri, as
             always; optionally with --ca-bundle-file for a private CA
  jwks       an uploaded key set, for issuers the token service cannot reach
             (private and air-gapped clusters): nothing is fetched
  pushed     a key set an agent in the cluster keeps current (wif cluster
             sync); keys a push removes keep verifying for --key-overlap

Settings are per tenant: keys uploaded in one tenant never verify assertions
presented in another. Changing them needs Directory.ReadWrite.All in the
tenant (a ManagedIdentityContributor cannot).`,
	}
	af := addAdminFlags(cmd)
	var cf, uf issuerTrustFlags
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a trusted issuer",
		Example: `  kubectl get --raw /openid/v1/jwks | wif issuer-trust create -n air-gapped \
      --issuer https://kubernetes.default.svc.cluster.local --jwks-file -
  wif issuer-trust create -n spire --issuer https://oidc.spire.example.org --algorithms ES256`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, tid, err := af.clientAndTenant(cmd.Context())
			if err != nil {
				return err
			}
			var r admin.TrustedIssuerResource
			if err := cf.apply(cmd, streams, &r); err != nil {
				return err
			}
			if cf.keySource == string(directory.KeySourcePushed) && cf.jwksFile == "" {
				fmt.Fprintln(streams.ErrOut, "note: a pushed issuer verifies nothing until its first push; give --jwks-file with its current keys so the sync agent's own token verifies (it authenticates with one)")
			}
			out, err := c.PutTrustedIssuer(cmd.Context(), tid, cf.name, r, true)
			if err != nil {
				return err
			}
			return af.print(streams.Out, out, trustedIssuerTable(out))
		},
	}
	cf.register(create, true)
	update := &cobra.Command{
		Use:   "update",
		Short: "Change a trusted issuer (only the flags given)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, tid, err := af.clientAndTenant(cmd.Context())
			if err != nil {
				return err
			}
			cur, err := c.GetTrustedIssuer(cmd.Context(), tid, uf.name)
			if err != nil {
				return err
			}
			r := forPut(cur)
			if err := uf.apply(cmd, streams, &r); err != nil {
				return err
			}
			out, err := c.PutTrustedIssuer(cmd.Context(), tid, uf.name, r, false)
			if err != nil {
				return err
			}
			return af.print(streams.Out, out, trustedIssuerTable(out))
		},
	}
	uf.register(update, false)
	var name, jwksFile string
	show := &cobra.Command{
		Use:   "show",
		Short: "Show a trusted issuer, with its keys as the token service reads them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, tid, err := af.clientAndTenant(cmd.Context())
			if err != nil {
				return err
			}
			out, err := c.GetTrustedIssuer(cmd.Context(), tid, name)
			if err != nil {
				return err
			}
			return af.print(streams.Out, out, trustedIssuerTable(out))
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the tenant's trusted issuers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, tid, err := af.clientAndTenant(cmd.Context())
			if err != nil {
				return err
			}
			out, err := c.ListTrustedIssuers(cmd.Context(), tid)
			if err != nil {
				return err
			}
			if out == nil {
				out = []admin.TrustedIssuerResource{}
			}
			return af.print(streams.Out, out, trustedIssuerTable(out...))
		},
	}
	del := &cobra.Command{
		Use:   "delete",
		Short: "Delete a trusted issuer: its issuer is fetched by discovery and accepts RS256 only again",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, tid, err := af.clientAndTenant(cmd.Context())
			if err != nil {
				return err
			}
			return c.DeleteTrustedIssuer(cmd.Context(), tid, name)
		},
	}
	push := &cobra.Command{
		Use:   "push-keys",
		Short: "Push a pushed issuer's current key set by hand (what wif cluster sync does on every change)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, tid, err := af.clientAndTenant(cmd.Context())
			if err != nil {
				return err
			}
			b, err := readSource(streams, jwksFile)
			if err != nil {
				return err
			}
			res, err := c.PushKeys(cmd.Context(), tid, name, b)
			if err != nil {
				return err
			}
			return af.print(streams.Out, res, func() table {
				t := table{headers: []string{"Name", "Changed", "Keys", "Retiring"}}
				var kids, retiring []string
				for _, k := range res.Keys {
					kids = append(kids, k.KID)
				}
				for _, k := range res.RetiredKeys {
					retiring = append(retiring, k.KID+" until "+k.Until.UTC().Format(time.RFC3339))
				}
				t.rows = append(t.rows, []string{res.Name, strconv.FormatBool(res.Changed), strings.Join(kids, ","), strings.Join(retiring, ", ")})
				return t
			})
		},
	}
	for _, c := range []*cobra.Command{show, del, push} {
		c.Flags().StringVarP(&name, "name", "n", "", "the trusted issuer's name (required)")
		_ = c.MarkFlagRequired("name")
	}
	push.Flags().StringVar(&jwksFile, "jwks-file", "-", "the key set ('-' reads standard input)")
	cmd.AddCommand(create, update, show, list, del, push)
	return cmd
}

func issuerSetTable(ss ...admin.IssuerSetResource) func() table {
	return func() table {
		t := table{headers: []string{"Name", "CredentialIssuer", "Issuers"}}
		for _, s := range ss {
			t.rows = append(t.rows, []string{s.Name, s.Reference, strings.Join(s.Issuers, " ")})
		}
		return t
	}
}

func newIssuerSetCommand(streams Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "issuer-set",
		Short: "Manage issuer sets: one federated credential for the same subject on many clusters",
		Long: `An issuer set names several issuers. A federated credential whose issuer is
urn:wif:issuer-set:NAME trusts every issuer of the set, so one credential covers
the same service account on N clusters, and a new cluster joins by joining the
set (wif issuer-set update -n NAME --add-issuer URL) instead of by a new
credential on every identity. Changing sets needs Directory.ReadWrite.All in
the tenant.`,
	}
	af := addAdminFlags(cmd)
	var name, description string
	var issuers, add, remove []string
	get := func(cmd *cobra.Command) (*admin.Client, string, error) { return af.clientAndTenant(cmd.Context()) }
	create := &cobra.Command{
		Use:     "create",
		Short:   "Create an issuer set",
		Example: `  wif issuer-set create -n prod --issuer https://oidc.east.example --issuer https://oidc.west.example`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, tid, err := get(cmd)
			if err != nil {
				return err
			}
			out, err := c.PutIssuerSet(cmd.Context(), tid, name, admin.IssuerSetResource{Issuers: issuers, Description: description}, true)
			if err != nil {
				return err
			}
			return af.print(streams.Out, out, issuerSetTable(out))
		},
	}
	create.Flags().StringArrayVar(&issuers, "issuer", nil, "an issuer of the set (repeatable; required)")
	create.Flags().StringVar(&description, "description", "", "a description")
	_ = create.MarkFlagRequired("issuer")
	update := &cobra.Command{
		Use:   "update",
		Short: "Add issuers to a set or remove them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, tid, err := get(cmd)
			if err != nil {
				return err
			}
			cur, err := c.GetIssuerSet(cmd.Context(), tid, name)
			if err != nil {
				return err
			}
			for _, r := range remove {
				if !slices.Contains(cur.Issuers, r) {
					return fmt.Errorf("--remove-issuer %q: not an issuer of set %q (it has: %s)", r, name, strings.Join(cur.Issuers, ", "))
				}
				cur.Issuers = slices.DeleteFunc(cur.Issuers, func(s string) bool { return s == r })
			}
			for _, a := range add {
				if !slices.Contains(cur.Issuers, a) {
					cur.Issuers = append(cur.Issuers, a)
				}
			}
			if cmd.Flags().Changed("description") {
				cur.Description = description
			}
			out, err := c.PutIssuerSet(cmd.Context(), tid, name, admin.IssuerSetResource{Issuers: cur.Issuers, Description: cur.Description}, false)
			if err != nil {
				return err
			}
			return af.print(streams.Out, out, issuerSetTable(out))
		},
	}
	update.Flags().StringArrayVar(&add, "add-issuer", nil, "an issuer to add (repeatable)")
	update.Flags().StringArrayVar(&remove, "remove-issuer", nil, "an issuer to remove (repeatable)")
	update.Flags().StringVar(&description, "description", "", "a description")
	show := &cobra.Command{
		Use:   "show",
		Short: "Show an issuer set",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, tid, err := get(cmd)
			if err != nil {
				return err
			}
			out, err := c.GetIssuerSet(cmd.Context(), tid, name)
			if err != nil {
				return err
			}
			return af.print(streams.Out, out, issuerSetTable(out))
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the tenant's issuer sets",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, tid, err := get(cmd)
			if err != nil {
				return err
			}
			out, err := c.ListIssuerSets(cmd.Context(), tid)
			if err != nil {
				return err
			}
			if out == nil {
				out = []admin.IssuerSetResource{}
			}
			return af.print(streams.Out, out, issuerSetTable(out...))
		},
	}
	del := &cobra.Command{
		Use:   "delete",
		Short: "Delete an issuer set: credentials naming it then match nothing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, tid, err := get(cmd)
			if err != nil {
				return err
			}
			return c.DeleteIssuerSet(cmd.Context(), tid, name)
		},
	}
	for _, c := range []*cobra.Command{create, update, show, del} {
		c.Flags().StringVarP(&name, "name", "n", "", "the issuer set's name (required)")
		_ = c.MarkFlagRequired("name")
	}
	cmd.AddCommand(create, update, show, list, del)
	return cmd
}
