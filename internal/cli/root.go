// Package cli builds wif's command tree. Each command group lives in its own
// file; a command turns flags into a config and starts a part. Nothing here
// reads global state: streams and the context come from Run's caller, so the
// whole CLI can run inside a test.
package cli

import (
	"context"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Streams are the standard streams a command reads and writes. Results go to
// Out, diagnostics to ErrOut.
type Streams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

// StdStreams returns the process's standard streams.
func StdStreams() Streams {
	return Streams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
}

// Run executes the wif command line given by args, with flags settable from
// the process environment (WIF_<FLAG>).
func Run(ctx context.Context, streams Streams, args []string) error {
	return RunWithEnv(ctx, streams, args, os.LookupEnv)
}

// RunWithEnv is Run with the environment given as a lookup function, so tests
// need not touch the process environment.
func RunWithEnv(ctx context.Context, streams Streams, args []string, lookupEnv func(string) (string, bool)) error {
	root := NewRootCommand(streams)
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		return bindEnv(cmd, lookupEnv)
	}
	root.SetArgs(args)
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	return root.ExecuteContext(context.WithValue(ctx, lookupEnvKey{}, lookupEnv))
}

type lookupEnvKey struct{}

// lookupEnvFrom is the environment RunWithEnv was given, for commands
// that read the workload's environment as such (wif doctor).
func lookupEnvFrom(ctx context.Context) func(string) (string, bool) {
	if f, ok := ctx.Value(lookupEnvKey{}).(func(string) (string, bool)); ok {
		return f
	}
	return os.LookupEnv
}

// subcommands registers the constructors of the top-level commands. Each
// command group's file adds itself here in an init-free way: the list is
// explicit so the tree is visible in one place.
func subcommands(streams Streams) []*cobra.Command {
	return []*cobra.Command{
		newVersionCommand(streams),
		newGatewayCommand(streams),
		newServeCommand(streams),
		newIssuerCommand(streams),
		newTokenCommand(streams),
		newDevCommand(streams),
		newIMDSCommand(streams),
		newIdentityCommand(streams), newAppCommand(streams), newRoleCommand(streams), newAuditCommand(streams), newKeysCommand(streams), newApplyCommand(streams), newExportCommand(streams), newServiceAccountCommand(streams),
		newWebhookCommand(streams),
		newDoctorCommand(streams),
		newTenantCommand(streams), newADCommand(streams),
		newBackupCommand(streams), newRestoreCommand(streams),
		newClusterCommand(streams),
		newIssuerTrustCommand(streams), newIssuerSetCommand(streams),
		newControllerCommand(streams), newConsoleCommand(streams),
	}
}

// NewRootCommand builds the full command tree.
func NewRootCommand(streams Streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "wif",
		Short: "Self-hosted workload identity federation, compatible with Microsoft Entra Workload ID",
		Long: `wif exchanges short-lived platform tokens (Kubernetes service-account tokens,
CI job tokens) for access tokens, with no secret and no certificate, speaking
the same protocol as Microsoft Entra ID so the Azure SDKs work unmodified.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(subcommands(streams)...)
	for _, c := range root.Commands() {
		requireSubcommands(c)
	}
	return root
}

// noEnvAnnotation marks a flag that WIF_<FLAG> does not set: one that
// shadows a login flag of the same name.
const noEnvAnnotation = "wif/no-env"

// bindEnv makes every flag of cmd settable through an environment variable
// WIF_<FLAG> (upper case, '-' as '_') unless the flag was given on the command
// line. lookup is os.LookupEnv in production and a map in tests.
func bindEnv(cmd *cobra.Command, lookup func(string) (string, bool)) error {
	var firstErr error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed || firstErr != nil || f.Annotations[noEnvAnnotation] != nil {
			return
		}
		name := "WIF_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := lookup(name); ok {
			if err := cmd.Flags().Set(f.Name, v); err != nil {
				firstErr = err
			}
		}
	})
	return firstErr
}
