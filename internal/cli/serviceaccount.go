package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/apply"
	"github.com/wif-project/wif/internal/directory"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// Annotation and label keys of Azure Workload Identity (spec/webhook.md).
const (
	annotationClientID = "azure.workload.identity/client-id"
	annotationTenantID = "azure.workload.identity/tenant-id"
	labelUse           = "azure.workload.identity/use"
)

func newServiceAccountCommand(streams Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "serviceaccount",
		Aliases: []string{"sa"},
		Short:   "Set up Kubernetes service accounts for workload identity (like azwi serviceaccount)",
	}
	af := addAdminFlags(cmd)
	var name, namespace, issuer, identityName, rg, sub, audience string
	var skipCheck bool
	create := &cobra.Command{
		Use:   "create",
		Short: "Create the identity and its federated credential, and print the annotated ServiceAccount",
		Long: `Create (or reuse) the managed identity --identity-name, give it a federated
credential trusting --issuer for subject system:serviceaccount:<namespace>:<name>,
and print the ServiceAccount manifest with the azure.workload.identity
annotations, ready for kubectl apply -f -.`,
		Args: cobra.NoArgs,
		RunE: withAdmin(af, func(ctx context.Context, c *admin.Client, tid string) error {
			if err := warnIssuer(ctx, af, streams.ErrOut, issuer, skipCheck); err != nil {
				return err
			}
			// Reuse the identity when it exists (a PUT would reset its
			// location and tags), else create it.
			mi, err := c.GetIdentity(ctx, tid, sub, rg, identityName)
			if admin.IsNotFound(err) {
				mi, err = c.PutIdentity(ctx, tid, sub, rg, identityName, admin.IdentityResource{})
			}
			if err != nil {
				return err
			}
			credName := credentialNameFor(namespace, name)
			subject := "system:serviceaccount:" + namespace + ":" + name
			existing, err := c.ListIdentityCredentials(ctx, tid, sub, rg, identityName)
			if err != nil {
				return err
			}
			// A credential trusting the same issuer and subject (under any
			// name) already does the job: keep it.
			found := false
			for _, f := range existing {
				if p := f.Properties; p != nil && p.Issuer == issuer && p.Subject == subject {
					credName, found = f.Name, true
				}
			}
			if !found {
				if _, err := c.PutIdentityCredential(ctx, tid, sub, rg, identityName, credName,
					admin.CredentialProperties{Issuer: issuer, Subject: subject, Audiences: []string{audience}}); err != nil {
					return err
				}
			}
			fmt.Fprintf(streams.ErrOut, "identity %s/%s (client id %s) trusts %s for %s (credential %s)\n",
				rg, identityName, mi.Properties.ClientID, issuer, subject, credName)
			sa := corev1.ServiceAccount{
				TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
				ObjectMeta: metav1.ObjectMeta{
					Name: name, Namespace: namespace,
					Annotations: map[string]string{annotationClientID: mi.Properties.ClientID, annotationTenantID: tid},
					Labels:      map[string]string{labelUse: "true"},
				},
			}
			y, err := yaml.Marshal(sa)
			if err != nil {
				return fmt.Errorf("render ServiceAccount: %w", err)
			}
			// Drop the empty creationTimestamp that ObjectMeta always renders.
			y = bytes.Replace(y, []byte("  creationTimestamp: null\n"), nil, 1)
			_, err = streams.Out.Write(y)
			return err
		}),
	}
	f := create.Flags()
	f.StringVar(&name, "name", "", "service account name")
	f.StringVar(&namespace, "namespace", "default", "service account namespace")
	f.StringVar(&issuer, "issuer", "", "the cluster's service account issuer URL (kubectl get --raw /.well-known/openid-configuration)")
	f.StringVar(&identityName, "identity-name", "", "managed identity to create or reuse")
	f.StringVarP(&rg, "resource-group", "g", "wif", "the identity's resource group")
	f.StringVar(&sub, "subscription", apply.DefaultSubscriptionID, "the identity's subscription")
	f.StringVar(&audience, "audience", directory.DefaultAudience, "audience of the projected service account token")
	f.BoolVar(&skipCheck, "skip-issuer-check", false, "do not fetch the issuer's discovery document")
	for _, n := range []string{"name", "issuer", "identity-name"} {
		_ = create.MarkFlagRequired(n)
	}
	cmd.AddCommand(create)
	return cmd
}

// credentialNameFor names the credential of a service account: at most 120
// characters of [A-Za-z0-9_-], as the directory requires.
func credentialNameFor(namespace, name string) string {
	n := "kubernetes-" + namespace + "-" + name
	out := make([]byte, 0, len(n))
	for i := 0; i < len(n) && len(out) < directory.MaxCredentialNameLen; i++ {
		ch := n[i]
		if ch == '.' {
			ch = '-'
		}
		out = append(out, ch)
	}
	return string(out)
}
