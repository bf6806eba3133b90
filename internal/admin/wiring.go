package admin

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wif-project/wif/internal/store"
)

// ServiceConfig is what the token service knows when it mounts the admin
// API (see NewForTokenService).
type ServiceConfig struct {
	Store store.Store
	// PublicURL is the token service's public URL (no trailing '/'), the
	// base of its issuers.
	PublicURL string
	// EntraIssuerNames: v1 tokens carry https://sts.windows.net/{tid}/.
	EntraIssuerNames bool
	// VerifySignature checks a token against the service's own signing keys
	// (jose.Manager.Verify). It may be a closure over a value set after
	// construction: it is first called on the first admin request.
	VerifySignature SignatureVerifier
	// OperatorTenant is the tenant whose directory admins administer every
	// tenant (see TokenAuthorizer.OperatorTenant); usually the bootstrap
	// admin's tenant.
	OperatorTenant string
	// AllowLoopback accepts unauthenticated calls when both ends of the
	// connection are loopback (wif dev only).
	AllowLoopback bool
	// OnChange is called after writes (reload the in-memory directory).
	OnChange func()
	Logger   *slog.Logger
	// Registerer receives the API's metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Keys operates the signing keys (the token service's *jose.Manager).
	Keys KeyOperator
	// Tester runs credential dry-runs (the token service's *sts.Service).
	Tester CredentialTester
	// MaxApplyBytes bounds directory documents (default
	// apply.DefaultMaxApplyBytes).
	MaxApplyBytes int64
	// Audit records admin changes (see Config.Audit).
	Audit func(store.AuditRecord)
}

// NewForTokenService builds the admin API as the token service serves it:
// bearer tokens of this service for api://wif-admin, by app role. Mount the
// result on the service's mux with Handler.Mount:
//
//	var srv *stsserver.Server
//	srv, err = stsserver.New(ctx, stsserver.Config{ ...,
//		Mount: func(mux *http.ServeMux, svc *sts.Service) {
//			h, err := admin.NewForTokenService(admin.ServiceConfig{Store: st, PublicURL: url,
//				VerifySignature: func(raw string) ([]byte, error) { return srv.Keys.Verify(raw) },
//				OnChange: func() { _ = svc.DirectoryChanged(context.Background()) }})
//			...
//			h.Mount(mux)
//		}})
func NewForTokenService(c ServiceConfig) (*Handler, error) {
	return NewHandler(Config{
		Store:      c.Store,
		Authorizer: NewTokenAuthorizer(c),
		OnChange:   c.OnChange,
		Logger:     c.Logger,
		Registerer: c.Registerer,
		Keys:       c.Keys,
		Tester:     c.Tester,

		MaxApplyBytes: c.MaxApplyBytes,
		Audit:         c.Audit,
	})
}

// NewTokenAuthorizer is the authorizer NewForTokenService uses, for other
// surfaces of the token service that authenticate admin tokens the same
// way (the Resource Manager endpoints).
func NewTokenAuthorizer(c ServiceConfig) *TokenAuthorizer {
	return &TokenAuthorizer{
		Verify:         NewVerifier(c.VerifySignature, Issuers(c.PublicURL, c.EntraIssuerNames), nil),
		Directory:      c.Store,
		AllowLoopback:  c.AllowLoopback,
		OperatorTenant: c.OperatorTenant,
	}
}

var _ http.Handler = (*Handler)(nil)
