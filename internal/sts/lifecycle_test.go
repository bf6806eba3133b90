package sts_test

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/store/memory"
	"github.com/wif-project/wif/internal/wiftest"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestAuditDrainedOnStopAndLogsCarryNoToken: records queued when the
// service stops are written (no FlushAudit), and neither the logs nor the
// audit hold an assertion or an access token.
func TestAuditDrainedOnStopAndLogsCarryNoToken(t *testing.T) {
	st := memory.New()
	defer st.Close()
	var logs syncBuffer
	var tenant string
	var secrets []string
	t.Run("serve", func(t *testing.T) {
		env := wiftest.Start(t, wiftest.WithStore(st), wiftest.WithLogger(slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
		tenant = env.TenantID
		mi := env.CreateManagedIdentity(t, "demo")
		env.CreateResourceApp(t, "api://provider-api", 1)
		path := "/" + env.TenantID + "/oauth2/v2.0/token"
		for i := 0; i < 25; i++ {
			a := env.Issuer.Mint(t, wiftest.Subject("demo"), directory.DefaultAudience, time.Hour)
			r := env.Post(t, path, wiftest.ExchangeForm(mi.ClientID, a, "api://provider-api/.default"))
			if r.Status != 200 {
				t.Fatalf("exchange: %d %s", r.Status, r.Raw)
			}
			secrets = append(secrets, a, r.Body["access_token"].(string))
			bad := env.Issuer.Mint(t, wiftest.Subject("intruder"), directory.DefaultAudience, time.Hour)
			if r := env.Post(t, path, wiftest.ExchangeForm(mi.ClientID, bad, "api://provider-api/.default")); r.Status != 401 {
				t.Fatalf("refusal: %d %s", r.Status, r.Raw)
			}
			secrets = append(secrets, bad)
		}
	}) // the service stops here, with records still queued (batches are written every 200 ms)
	page, err := st.ListAudit(context.Background(), store.AuditFilter{TenantID: tenant, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	// 25 successes of one identity and credential: the first as a record,
	// the rest counted per minute; 25 refusals, each a record.
	total, failures := 0, 0
	for _, r := range page.Records {
		total += max(r.Count, 1)
		if r.Result == store.AuditFailure {
			failures++
		}
	}
	if total != 50 || failures != 25 || len(page.Records) > 28 {
		t.Fatalf("after a clean stop: %d exchanges in %d records (%d refusals); want 50 exchanges, 25 refusals and the repeated successes aggregated", total, len(page.Records), failures)
	}
	out := logs.String()
	if !strings.Contains(out, `"msg":"token issued"`) || !strings.Contains(out, `"msg":"token request refused"`) {
		t.Fatalf("the logs lack the exchange lines:\n%.2000s", out)
	}
	for _, s := range secrets {
		for _, part := range strings.Split(s, ".") {
			if len(part) > 20 && strings.Contains(out, part) {
				t.Fatalf("the logs hold a piece of a token or assertion")
			}
		}
	}
}

// TestRefreshInForLongLifetimes: refresh_in (half the lifetime) is sent
// only for lifetimes of 2 h or more.
func TestRefreshInForLongLifetimes(t *testing.T) {
	env := wiftest.Start(t, wiftest.WithTokenLifetime(3*time.Hour))
	mi := env.CreateManagedIdentity(t, "demo")
	env.CreateResourceApp(t, "api://provider-api", 2)
	r := env.Post(t, "/"+env.TenantID+"/oauth2/v2.0/token",
		wiftest.ExchangeForm(mi.ClientID, env.Issuer.Mint(t, wiftest.Subject("demo"), directory.DefaultAudience, time.Hour), "api://provider-api/.default"))
	if r.Status != 200 || r.Body["refresh_in"] != float64(5400) || r.Body["expires_in"] != float64(10799) {
		t.Fatalf("status %d body %s, want refresh_in 5400 and expires_in 10799", r.Status, r.Raw)
	}
}

// TestHeaderRefusalsAtTheEndpoint: an assertion without kid, or with a
// critical header extension, is refused at the token endpoint.
func TestHeaderRefusalsAtTheEndpoint(t *testing.T) {
	env := wiftest.Start(t)
	mi := env.CreateManagedIdentity(t, "demo")
	env.CreateResourceApp(t, "api://provider-api", 2)
	now := time.Now()
	claims := []byte(`{"iss":"` + env.Issuer.URL + `","sub":"` + wiftest.Subject("demo") + `","aud":"api://AzureADTokenExchange","iat":` +
		itoa(now.Unix()) + `,"exp":` + itoa(now.Add(time.Hour).Unix()) + `}`)
	sign := func(opts *jose.SignerOptions) string {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: env.Issuer.Key()}, opts)
		if err != nil {
			t.Fatal(err)
		}
		jws, err := signer.Sign(claims)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := jws.CompactSerialize()
		return s
	}
	kid := wiftest.KeyID(&env.Issuer.Key().PublicKey)
	for name, tc := range map[string]struct {
		assertion string
		want      string
	}{
		"no kid": {sign(&jose.SignerOptions{}), "no kid"},
		"crit":   {sign((&jose.SignerOptions{}).WithHeader("kid", kid).WithHeader("crit", []string{"urn:example:policy"}).WithHeader("urn:example:policy", "x")), "critical extensions"},
	} {
		t.Run(name, func(t *testing.T) {
			r := env.Post(t, "/"+env.TenantID+"/oauth2/v2.0/token", wiftest.ExchangeForm(mi.ClientID, tc.assertion, "api://provider-api/.default"))
			desc, _ := r.Body["error_description"].(string)
			if r.Status != 400 || r.Body["error"] != "invalid_request" || codes(r) != 50027 || !strings.Contains(desc, tc.want) {
				t.Fatalf("got %d %s", r.Status, r.Raw)
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
