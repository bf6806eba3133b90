package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/wif-project/wif/internal/console"
	"github.com/wif-project/wif/internal/devenv"
	"github.com/wif-project/wif/internal/httpx"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/store/memory"
	"github.com/wif-project/wif/internal/store/stores"
	"github.com/wif-project/wif/internal/telemetry"
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
		cfg           devenv.Config
		verbose       bool
		otlpEndpoint  string
		consoleListen string
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
			text := slog.NewTextHandler(streams.ErrOut, &slog.HandlerOptions{Level: level})
			cfg.Logger = slog.New(text)
			if !verbose {
				cfg.Logger = slog.New(&devLog{Handler: text, out: streams.ErrOut, mu: &sync.Mutex{}})
			}
			cfg.SystemRoots = append([]string{os.Getenv("SSL_CERT_FILE")}, systemRootFiles...)
			cfg.NewMemoryStore = func() store.Store { return memory.New() }
			cfg.OpenStore = func(ctx context.Context, url string) (store.Store, error) {
				return stores.Open(ctx, url, cfg.Logger)
			}
			if cfg.TokenFileLifetime != 0 && (cfg.TokenFileLifetime < 2*time.Second || cfg.TokenFileLifetime > 24*time.Hour) {
				return fmt.Errorf("--token-file-lifetime %s: want between 2s and 24h", cfg.TokenFileLifetime)
			}
			tp, err := telemetry.New(cmd.Context(), telemetry.Options{Endpoint: otlpEndpoint, ServiceName: "wif-dev", LookupEnv: lookupEnvFrom(cmd.Context())})
			if err != nil {
				return err
			}
			defer flushTraces(tp, cfg.Logger)
			cfg.TracerProvider = tp
			d, err := devenv.Start(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			fmt.Fprint(streams.ErrOut, d.Env().Banner(d.ReadyIn, selfCommand()))
			if consoleListen != "" {
				url, err := startDevConsole(cmd.Context(), d.Env(), consoleListen, cfg.Logger)
				if err != nil {
					cfg.Logger.Warn("the console did not start", "error", err)
				} else {
					fmt.Fprintf(streams.ErrOut, "Console:\n  %s\n", url)
				}
			}
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
	f.StringVar(&otlpEndpoint, "otlp-endpoint", "", "export the token service's and the gateway's traces over OTLP/HTTP (default $OTEL_EXPORTER_OTLP_ENDPOINT; off when neither is set)")
	f.StringVar(&consoleListen, "console-listen", "127.0.0.1:8099", "serve the web console here (a free port if it is taken; \"\" for none)")
	_ = f.MarkHidden("token-file-lifetime")
	return cmd
}

// startDevConsole serves the console for wif dev's loopback admin API,
// on addr or, when addr is taken, a free loopback port.
func startDevConsole(ctx context.Context, e devenv.Env, addr string, logger *slog.Logger) (string, error) {
	pem, err := os.ReadFile(e.CAFile)
	if err != nil {
		return "", err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	u, err := url.Parse(strings.TrimSuffix(e.AuthorityHost, "/"))
	if err != nil {
		return "", err
	}
	con, err := console.New(console.Config{AdminURL: u, Logger: logger,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}},
		Session:   console.Session{Server: u.String(), TenantID: e.TenantID, Roles: []string{}, CanWrite: true, Unrestricted: true}})
	if err != nil {
		return "", err
	}
	ln, err := httpx.Listen(addr)
	if err != nil {
		if ln, err = httpx.Listen("127.0.0.1:0"); err != nil {
			return "", err
		}
	}
	con.SetAddr(ln.Addr().String())
	go func() { _ = con.Serve(ctx, ln) }()
	return con.URL(), nil
}

// selfCommand is how the user can run this same wif from another shell:
// "go run ./cmd/wif" under go run, "wif" when that is on PATH, else the
// executable's path.
func selfCommand() string {
	exe, err := os.Executable()
	if err != nil {
		return "wif"
	}
	return commandFor(exe, exec.LookPath)
}

func commandFor(exe string, lookPath func(string) (string, error)) string {
	if strings.Contains(exe, string(filepath.Separator)+"go-build") {
		return "go run ./cmd/wif"
	}
	if p, err := lookPath("wif"); err == nil {
		if a, err1 := filepath.EvalSymlinks(p); err1 == nil {
			if b, err2 := filepath.EvalSymlinks(exe); err2 == nil && a == b {
				return "wif"
			}
		}
	}
	return exe
}

// devLog is wif dev's quiet log: warnings and errors as they come, and
// each refused exchange on one line with its code, reason and correlation
// id (wif serve logs them as records; here a person is watching).
type devLog struct {
	slog.Handler
	out io.Writer
	mu  *sync.Mutex // shared by the handlers WithAttrs derives
}

func (h *devLog) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo
}

func (h *devLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		return h.Handler.Handle(ctx, r)
	}
	if r.Message != "token request refused" {
		return nil
	}
	a := map[string]string{}
	r.Attrs(func(at slog.Attr) bool {
		a[at.Key] = at.Value.String()
		return true
	})
	line := fmt.Sprintf("%s refused: AADSTS%s %s", r.Time.Format("15:04:05"), a["code"], a["error"])
	if a["client_id"] != "" {
		line += " client " + a["client_id"]
	}
	if a["assertion_sub"] != "" {
		line += fmt.Sprintf(" sub %q", a["assertion_sub"])
	}
	if a["reason"] != "" {
		line += ": " + a["reason"]
	}
	line += " (wif audit explain " + a["correlation_id"] + ")"
	// The reason quotes what the caller sent: no control character (an
	// escape sequence) reaches the terminal.
	line = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, line) + "\n"
	if h.mu != nil {
		h.mu.Lock()
		defer h.mu.Unlock()
	}
	_, err := io.WriteString(h.out, line)
	return err
}

func (h *devLog) WithAttrs(as []slog.Attr) slog.Handler {
	return &devLog{Handler: h.Handler.WithAttrs(as), out: h.out, mu: h.mu}
}

func (h *devLog) WithGroup(name string) slog.Handler {
	return &devLog{Handler: h.Handler.WithGroup(name), out: h.out, mu: h.mu}
}
