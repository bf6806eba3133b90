package doctor

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzParseJWT: any token file content yields a token or an error that
// says what is wrong — never a panic — and the checks built on it run.
func FuzzParseJWT(f *testing.F) {
	for _, s := range []string{
		"eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ.eyJpc3MiOiJodHRwczovL2kiLCJzdWIiOiJzIiwiYXVkIjpbImEiLDFdLCJleHAiOjF9.c2ln",
		"a.b.c", "a.b.c.d.e", "", "hello", "eyJ9.eyJ9.x", "e30.e30.",
		"eyJhbGciOiJub25lIn0.eyJleHAiOiJzb29uIiwiYXVkIjp7fX0.",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		tok, err := parseJWT(raw)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if strings.HasPrefix(tok.iss, "https://") {
			return // the checks would fetch the issuer's documents: no network in a fuzz run
		}
		// "null" claims decode to a nil map: the checks must cope.
		rep := CheckToken(context.Background(), raw, TokenCheck{Audience: "api://x", Roles: []string{"r"}, Timeout: time.Millisecond})
		if len(rep.Checks) == 0 {
			t.Fatal("no checks")
		}
	})
}

func TestHuman(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 59 * time.Second: "59s", 90 * time.Second: "1m", time.Hour: "1h", 125 * time.Minute: "2h5m", -3 * time.Hour: "3h", 72 * time.Hour: "3d",
	} {
		if got := human(d); got != want {
			t.Errorf("human(%s) = %q, want %q", d, got, want)
		}
	}
}

// TestTokenFileAlgorithm: an ES256 token (a SPIRE JWT-SVID) is a warning
// naming the operator's switch, not a failure; an unsigned one fails.
func TestTokenFileAlgorithm(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	for _, tc := range []struct {
		alg  string
		want Status
	}{{"ES256", Warn}, {"none", Fail}, {"RS256", Pass}} {
		hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"` + tc.alg + `","kid":"k"}`))
		claims := base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"iss":"https://spire.example.org","sub":"spiffe://example.org/x","aud":"api://AzureADTokenExchange","iat":%d,"exp":%d}`,
			now.Unix(), now.Add(time.Hour).Unix())))
		path := filepath.Join(dir, tc.alg)
		if err := os.WriteFile(path, []byte(hdr+"."+claims+".c2ln"), 0o600); err != nil {
			t.Fatal(err)
		}
		r := &Report{}
		checkTokenFile(r, Config{Now: time.Now}, &workload{tokenFile: path})
		var got *Check
		for i := range r.Checks {
			if r.Checks[i].Name == "algorithm" {
				got = &r.Checks[i]
			}
		}
		if got == nil || got.Status != tc.want {
			t.Fatalf("%s: %+v", tc.alg, got)
		}
		if tc.alg == "ES256" && !strings.Contains(got.Fix, "--issuer-algorithms https://spire.example.org=ES256") {
			t.Errorf("ES256 fix: %q", got.Fix)
		}
	}
}
