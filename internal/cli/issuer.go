package cli

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/wif-project/wif/internal/httpx"
	"github.com/wif-project/wif/internal/issuer"
	"github.com/wif-project/wif/internal/tlsutil"
)

// DefaultIssuerURL is the issuer URL `wif issuer` uses when none is given:
// the address a kube-apiserver listens on in a local cluster.
const DefaultIssuerURL = "https://127.0.0.1:6443"

func newIssuerCommand(streams Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "issuer",
		Short: "A Kubernetes-style OIDC issuer: serve discovery and keys, mint service-account tokens",
		Long: `wif issuer is an OIDC issuer shaped like a Kubernetes API server's
service-account issuer, for places without one (a laptop, a VM, CI). Its key
lives in the state directory (issuer-key.pem), so restarts keep it.`,
	}
	cmd.AddCommand(newIssuerServeCommand(streams), newIssuerTokenCommand(streams))
	return cmd
}

func newIssuerServeCommand(streams Streams) *cobra.Command {
	var (
		listen, issuerURL, stateDir, certFile, keyFile, readyFile string
		selfSigned                                                bool
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve /.well-known/openid-configuration and /openid/v1/jwks over HTTPS",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if selfSigned == (certFile != "" || keyFile != "") || (certFile == "") != (keyFile == "") {
				return errors.New("give either --tls-self-signed or both --tls-cert-file and --tls-key-file (relying parties fetch issuer keys over HTTPS only)")
			}
			ln, err := httpx.Listen(listen)
			if err != nil {
				return err
			}
			defer ln.Close()
			if issuerURL == "" {
				issuerURL = "https://" + ln.Addr().String()
			}
			iss, err := issuer.New(issuer.Options{URL: issuerURL, StateDir: stateDir})
			if err != nil {
				return err
			}
			var getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)
			if selfSigned {
				ca, err := tlsutil.LoadOrCreateCA(stateDir, "wif local CA")
				if err != nil {
					return err
				}
				cert, err := ca.Issue(ServingHosts(issuerURL), 365*24*time.Hour)
				if err != nil {
					return err
				}
				getCert = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }
				fmt.Fprintf(streams.ErrOut, "TLS: certificate signed by %s/ca.pem\n", stateDir)
			} else {
				fc, err := tlsutil.NewFileCertificate(certFile, keyFile)
				if err != nil {
					return err
				}
				getCert = fc.GetCertificate
			}
			mux := http.NewServeMux()
			mux.Handle("/", iss.Handler())
			var probes httpx.Probes
			probes.Mount(mux)
			if readyFile != "" {
				if err := tlsutil.WriteFileAtomic(readyFile, []byte(issuerURL), 0o644); err != nil {
					return err
				}
			}
			fmt.Fprintf(streams.ErrOut, "issuer %s (kid %s) listening on %s\n", issuerURL, iss.KeyID(), ln.Addr())
			srv := &httpx.Server{Handler: mux, TLSConfig: tlsutil.ServerConfig(getCert), Logger: slog.New(slog.NewTextHandler(streams.ErrOut, nil))}
			return srv.Serve(cmd.Context(), ln)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:6443", "address to listen on (port 0 picks a free port)")
	f.StringVar(&issuerURL, "url", "", "issuer URL, the iss of tokens (default https://<listen address>)")
	f.StringVar(&stateDir, "state-dir", ".wif", "directory holding the issuer key (and the local CA with --tls-self-signed)")
	f.BoolVar(&selfSigned, "tls-self-signed", false, "serve with a certificate from the state directory's local CA (ca.pem)")
	f.StringVar(&certFile, "tls-cert-file", "", "serving certificate (PEM), reloaded when it changes")
	f.StringVar(&keyFile, "tls-key-file", "", "serving certificate's key (PEM)")
	f.StringVar(&readyFile, "ready-file", "", "file written with the issuer URL once listening")
	return cmd
}

// ServingHosts are the names a local serving certificate covers: loopback
// and the host of publicURL.
func ServingHosts(publicURL string) []string {
	hosts := []string{"127.0.0.1", "::1", "localhost"}
	if u, err := url.Parse(publicURL); err == nil {
		h := u.Hostname()
		if h != "" && h != "127.0.0.1" && h != "::1" && h != "localhost" {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

func newIssuerTokenCommand(streams Streams) *cobra.Command {
	var (
		req                      issuer.TokenRequest
		issuerURL, stateDir, out string
		fileMode                 string
		once                     bool
	)
	cmd := &cobra.Command{
		Use:   "token --namespace N --service-account S --out FILE",
		Short: "Mint a service-account token and keep FILE fresh like the kubelet",
		Long: `Mint a projected-service-account-shaped token and write it to FILE,
replacing the file atomically at 80% of each token's lifetime (the kubelet's
rule) until interrupted. With --once, write one token and exit; with
--out -, print one token to stdout.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			iss, err := issuer.New(issuer.Options{URL: issuerURL, StateDir: stateDir})
			if err != nil {
				return err
			}
			if out == "-" {
				tok, err := iss.Mint(req)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(streams.Out, tok.Raw)
				return err
			}
			mode, err := strconv.ParseUint(fileMode, 8, 32)
			if err != nil || mode > 0o777 {
				return fmt.Errorf("--file-mode %q: want an octal mode such as 0600 or 0644", fileMode)
			}
			w := &issuer.Writer{Issuer: iss, Request: req, Path: out, Mode: os.FileMode(mode),
				OnWrite: func(tok issuer.Token) {
					fmt.Fprintf(streams.ErrOut, "%s: token for %s, expires %s, next refresh %s\n", out,
						tok.Claims.Subject, tok.Expiry().UTC().Format(time.RFC3339), issuer.RefreshAt(tok).UTC().Format(time.RFC3339))
				}}
			if once {
				_, err := w.WriteOnce()
				return err
			}
			return w.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVarP(&req.Namespace, "namespace", "n", "default", "the service account's namespace")
	f.StringVar(&req.ServiceAccount, "service-account", "", "the service account's name (required)")
	f.StringVar(&req.PodName, "pod-name", "", "the pod named in the kubernetes.io claim (default <service-account>-local)")
	f.StringSliceVar(&req.Audiences, "audience", nil, "token audience, repeatable (default api://AzureADTokenExchange)")
	f.DurationVar(&req.Lifetime, "lifetime", time.Hour, "token lifetime")
	f.StringVar(&issuerURL, "issuer", DefaultIssuerURL, "issuer URL (the iss claim); the URL wif issuer serve serves")
	f.StringVar(&stateDir, "state-dir", ".wif", "directory holding the issuer key")
	f.StringVar(&out, "out", "", "file to keep fresh, or - to print one token (required)")
	f.StringVar(&fileMode, "file-mode", "0600", "token file mode (the kubelet uses 0644 inside a pod)")
	f.BoolVar(&once, "once", false, "write one token and exit")
	_ = cmd.MarkFlagRequired("service-account")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}
