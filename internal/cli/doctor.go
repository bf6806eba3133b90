package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/wif-project/wif/internal/doctor"
)

// errDoctorFailed makes wif doctor exit 1 after its report.
var errDoctorFailed = errors.New("some checks failed (✗ above)")

func newDoctorCommand(streams Streams) *cobra.Command {
	var scope, pod, namespace, kubeconfig, output string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check, where the workload runs, everything its token exchange needs; say what is wrong and how to fix it",
		Long: `Run where the workload runs — in the pod (kubectl exec), in the CI job, or on a
laptop after '. .wif/env' — to check, in the order to debug them:

  environment    AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE,
                 AZURE_AUTHORITY_HOST (https, host root, trailing '/'), no
                 AZURE_REGIONAL_AUTHORITY_NAME / MSAL_FORCE_REGION,
                 IDENTITY_ENDPOINT/IDENTITY_HEADER, SSL_CERT_FILE
  token file     readable, a JWT, RS256, aud, time to expiry, refreshed
  issuer         discovery names exactly the token's iss; its keys hold the
                 token's kid and verify its signature
  token service  reachable with the trust the SDK uses, the tenant exists,
                 clock skew
  exchange       with --scope, a real exchange; on refusal the token
                 service's answer and the correlation id for an admin
  kubernetes     with --pod NAME -n NS (a kubeconfig): the pod's label, its
                 service account's client-id annotation, and whether (and
                 why not) the webhook injected it

Each check prints ✓, ✗ (with the fix), ! (worth reading) or - (skipped).
Exit status 1 when any check fails. -o json prints the report.`,
		Example: `  . .wif/env && wif doctor --scope api://provider-api/.default
  kubectl exec deploy/app -- wif doctor --scope api://my-api/.default
  wif doctor --pod app-7c9d -n prod`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if output != "table" && output != "json" {
				return fmt.Errorf("--output must be table or json, not %q", output)
			}
			cfg := doctor.Config{LookupEnv: lookupEnvFrom(ctx), Scope: scope, Timeout: timeout}
			if pod != "" {
				rules := clientcmd.NewDefaultClientConfigLoadingRules()
				if kubeconfig != "" {
					rules.ExplicitPath = kubeconfig
				}
				cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
				rc, err := cc.ClientConfig()
				if err != nil {
					return fmt.Errorf("--pod needs a kubeconfig (--kubeconfig, KUBECONFIG or ~/.kube/config): %w", err)
				}
				rc.Timeout = timeout
				kc, err := kubernetes.NewForConfig(rc)
				if err != nil {
					return fmt.Errorf("kubernetes client: %w", err)
				}
				if namespace == "" {
					if namespace, _, err = cc.Namespace(); err != nil || namespace == "" {
						namespace = "default"
					}
				}
				cfg.Kube = &doctor.KubeTarget{Client: kc, Namespace: namespace, Pod: pod}
				// From outside the pod, this machine's environment is not
				// the workload's.
				cfg.SkipLocal = true
			}
			rep := doctor.Run(ctx, cfg)
			if output == "json" {
				enc := json.NewEncoder(streams.Out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else if err := writeDoctor(streams.Out, rep, pod != ""); err != nil {
				return err
			}
			if !rep.OK {
				return errDoctorFailed
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&scope, "scope", "", "also make a real exchange for this scope (api://my-api/.default)")
	f.StringVar(&pod, "pod", "", "check this pod's injection through the API server instead of the local environment")
	f.StringVarP(&namespace, "namespace", "n", "", "the pod's namespace (default: the kubeconfig's)")
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file for --pod (default $KUBECONFIG or ~/.kube/config)")
	f.StringVarP(&output, "output", "o", "table", "table or json")
	f.DurationVar(&timeout, "timeout", 10*time.Second, "bound on each network request")
	return cmd
}

var doctorTitles = map[string]string{
	doctor.SectionEnv: "Environment", doctor.SectionTokenFile: "Token file", doctor.SectionIssuer: "Issuer",
	doctor.SectionTokenService: "Token service", doctor.SectionExchange: "Exchange", doctor.SectionKubernetes: "Kubernetes",
	doctor.SectionToken: "Token", doctor.SectionResource: "What a resource requires",
}

var doctorMarks = map[doctor.Status]string{doctor.Pass: "✓", doctor.Fail: "✗", doctor.Warn: "!", doctor.Skip: "-"}

// writeDoctor prints a report for a person: a heading per section, a line
// per check, the fix under each failure or warning.
func writeDoctor(w io.Writer, r *doctor.Report, remote bool) error {
	var b strings.Builder
	section := ""
	for _, c := range r.Checks {
		if c.Section != section {
			if section != "" {
				b.WriteString("\n")
			}
			section = c.Section
			b.WriteString(doctorTitles[section] + "\n")
		}
		fmt.Fprintf(&b, "  %s %s", doctorMarks[c.Status], c.Name)
		if c.Detail != "" {
			fmt.Fprintf(&b, ": %s", c.Detail)
		}
		b.WriteString("\n")
		if c.Fix != "" && (c.Status == doctor.Fail || c.Status == doctor.Warn || c.Status == doctor.Skip) {
			fmt.Fprintf(&b, "      fix: %s\n", c.Fix)
		}
	}
	b.WriteString("\n")
	if n := r.Failed(); n > 0 {
		fmt.Fprintf(&b, "%d check(s) failed.", n)
		if r.CorrelationID != "" {
			fmt.Fprintf(&b, " Correlation id %s: hand it to an admin for 'wif audit explain %s'.", r.CorrelationID, r.CorrelationID)
		}
		b.WriteString("\n")
	} else {
		b.WriteString("No problem found.\n")
	}
	if remote {
		b.WriteString("(From outside the pod: run 'kubectl exec POD -- wif doctor' for the token and exchange checks.)\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
