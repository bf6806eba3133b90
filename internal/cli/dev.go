package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/wif-project/wif/internal/devenv"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/store/memory"
	"github.com/wif-project/wif/internal/store/stores"
)

// systemRootFiles are where Linux distributions and macOS keep the system
// root CAs as one PEM file (the list Go's crypto/x509 reads on Linux, plus
// macOS's).
var systemRootFiles = []string{
	"/etc/ssl/certs/ca-certificates.crt",
	"/etc/pki/tls/certs/ca-bundle.crt",
	"/etc/ssl/ca-bundle.pem",
	"/etc/pki/tls/cacert.pem",
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
	"/etc/ssl/cert.pem",
}

func newDevCommand(streams Streams) *cobra.Command {
	var (
		cfg     devenv.Config
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run everything a workload needs on this machine: issuer, token service, managed-identity endpoint, gateway, demo API",
		Long: `wif dev runs, in one process and with no cloud and no cluster, a Kubernetes-style
issuer, the token service, the managed-identity endpoint and a demo provider
API behind the gateway, seeds a managed identity "demo" that trusts the issuer for
system:serviceaccount:default:demo and may call api://provider-api, keeps a
federated token file fresh, and writes <state-dir>/env with the variables the
Azure SDKs read. Load it in another shell with ". .wif/env".

State (directory database, CA, keys) lives in --state-dir and survives
restarts. Stop with Ctrl-C.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			level := slog.LevelWarn
			if verbose {
				level = slog.LevelDebug
			}
			cfg.Logger = slog.New(slog.NewTextHandler(streams.ErrOut, &slog.HandlerOptions{Level: level}))
			cfg.SystemRoots = append([]string{os.Getenv("SSL_CERT_FILE")}, systemRootFiles...)
			cfg.NewMemoryStore = func() store.Store { return memory.New() }
			cfg.OpenStore = func(ctx context.Context, url string) (store.Store, error) {
				return stores.Open(ctx, url, cfg.Logger)
			}
			if cfg.TokenFileLifetime != 0 && (cfg.TokenFileLifetime < 2*time.Second || cfg.TokenFileLifetime > 24*time.Hour) {
				return fmt.Errorf("--token-file-lifetime %s: want between 2s and 24h", cfg.TokenFileLifetime)
			}
			d, err := devenv.Start(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			fmt.Fprint(streams.ErrOut, d.Env().Banner(d.ReadyIn))
			err = d.Wait()
			fmt.Fprintln(streams.ErrOut, "wif dev stopped")
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.StateDir, "state-dir", ".wif", "directory for the state: database, CA, keys, token file, env file")
	f.BoolVar(&cfg.InMemory, "in-memory", false, "keep the directory and signing keys in memory (lost on exit); files still go to --state-dir")
	f.BoolVar(&cfg.RandomPorts, "random-ports", false, "pick free ports (recorded in <state-dir>/dev.json and reused on restart)")
	f.DurationVar(&cfg.TokenFileLifetime, "token-file-lifetime", time.Hour, "lifetime of the federated tokens in the token file (replaced at 80%)")
	f.BoolVarP(&verbose, "verbose", "v", false, "log every part's debug messages")
	_ = f.MarkHidden("token-file-lifetime")
	return cmd
}
