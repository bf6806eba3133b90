package js

import (
	"io"
	"sync"
	"testing"

	"github.com/wif-project/wif/internal/wiftest"
)

// startTokenService runs wif's real token service (internal/wiftest) with a
// managed identity "demo" trusting the test issuer for
// system:serviceaccount:default:demo, assigned the role Data.Read on
// api://provider-api (v1 tokens), and writes demo's projected token file.
func startTokenService(t *testing.T) tokenService {
	t.Helper()
	env := wiftest.Start(t)
	mi := env.CreateManagedIdentity(t, "demo")
	app := env.CreateResourceApp(t, "api://provider-api", 1, "Data.Read")
	env.Assign(t, mi.PrincipalID, app.AppID, "Data.Read")
	return tokenService{
		authorityHost: env.URL + "/",
		tenantID:      env.TenantID,
		caFile:        env.CAFile,
		clientID:      mi.ClientID,
		tokenFile:     env.Issuer.WriteTokenFile(t, wiftest.Subject("demo")),
		scope:         "api://provider-api/.default",
		expectClaims: map[string]any{
			"aud":   "api://provider-api",
			"appid": mi.ClientID,
			"tid":   env.TenantID,
			"oid":   mi.PrincipalID,
			"roles": []any{"Data.Read"},
			"ver":   "1.0",
		},
		unknownScope: "api://no-such-api/.default",
		unknownError: "AADSTS500011",
	}
}

// syncWriter serialises writes from the server goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
