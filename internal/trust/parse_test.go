package trust

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

func TestParseDiscovery(t *testing.T) {
	for _, tc := range []struct {
		name, doc, wantErr string
		want               discoveryDoc
	}{
		{"kubernetes", `{"issuer":"https://kubernetes.default.svc.cluster.local","jwks_uri":"https://10.0.0.1:6443/openid/v1/jwks","response_types_supported":["id_token"],"subject_types_supported":["public"],"id_token_signing_alg_values_supported":["RS256"]}`,
			"", discoveryDoc{Issuer: "https://kubernetes.default.svc.cluster.local", JWKSURI: "https://10.0.0.1:6443/openid/v1/jwks"}},
		{"whitespace", " \n{\"issuer\":\"i\",\"jwks_uri\":\"https://h/k\"}\n", "", discoveryDoc{Issuer: "i", JWKSURI: "https://h/k"}},
		{"no jwks_uri", `{"issuer":"https://h"}`, `discovery document has no "jwks_uri"`, discoveryDoc{}},
		{"http jwks_uri", `{"issuer":"https://h","jwks_uri":"http://h/k"}`, `discovery document "jwks_uri" "http://h/k": not an https URL: scheme "http", only https is fetched`, discoveryDoc{}},
		{"relative jwks_uri", `{"issuer":"https://h","jwks_uri":"/keys"}`, `discovery document "jwks_uri" "/keys": not an https URL: scheme "", only https is fetched`, discoveryDoc{}},
		{"array", `[{"jwks_uri":"https://h/k"}]`, "discovery document is not a JSON object: expected a JSON object", discoveryDoc{}},
		{"html", `<html>`, "discovery document is not a JSON object: expected a JSON object", discoveryDoc{}},
		{"empty", ``, "discovery document is not a JSON object: expected a JSON object", discoveryDoc{}},
		{"trailing", `{"jwks_uri":"https://h/k"}{}`, "discovery document is not a JSON object: trailing data after the JSON object", discoveryDoc{}},
		{"wrong type", `{"jwks_uri":5}`, "discovery document is not a JSON object: json: cannot unmarshal number into Go struct field discoveryDoc.jwks_uri of type string", discoveryDoc{}},
		{"truncated", `{"jwks_uri":"https://h/k"`, "discovery document is not a JSON object: unexpected EOF", discoveryDoc{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseDiscovery([]byte(tc.doc))
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v\nwant %s", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestParseJWKS(t *testing.T) {
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Skipf("1024-bit RSA keys cannot be generated here: %v", err)
	}
	good := mustJSON(t, rsaJWK(0, "good"))
	noUse := rsaJWK(1, "nouse")
	noUse.Use = ""
	noKid := rsaJWK(2, "")
	ec := ecJWK(t, "ec")
	set := `{"keys":[` + strings.Join([]string{
		good,
		mustJSON(t, noUse),
		mustJSON(t, noKid),
		mustJSON(t, ec),
		`{"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"}`,
		`{"kty":"OKP","kid":"ed","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`,
		mustJSON(t, jose.JSONWebKey{Key: &weak.PublicKey, KeyID: "weak", Use: "sig"}),
		`{"kty":"RSA","kid":"bad","n":"!!","e":"AQAB"}`,
		`{"kty":"EC","kid":"badec","crv":"P-256","x":"AQAB","y":"AQAB"}`,
		strings.Replace(good, `"good"`, `"good"`, 1),
		`"not an object"`,
		`{"kid":"nokty"}`,
	}, ",") + `],"extra":true}`
	got, err := parseJWKS([]byte(set), 100)
	if err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range got.keys {
		kids = append(kids, k.KeyID)
		if !k.IsPublic() || !k.Valid() {
			t.Errorf("key %q is not a valid public key", k.KeyID)
		}
	}
	if want := []string{"good", "nouse", "", "ec", "ed"}; !slices.Equal(kids, want) {
		t.Errorf("kept kids %q, want %q", kids, want)
	}
	if _, ok := got.keys[3].Key.(*ecdsa.PublicKey); !ok {
		t.Errorf("ec key is %T", got.keys[3].Key)
	}
	wantSkipped := []string{
		`key 4 (kid "enc"): use "enc", not "sig"`,
		`key 6 (kid "weak"): RSA key of 1024 bits, at least 2048 required`,
		`key 7 (kid "bad"): `,
		`key 8 (kid "badec"): `,
		`key 9: duplicate kid "good", the first one is kept`,
		`key 10: not a JSON object`,
		`key 11 (kid "nokty"): kty "", only RSA, EC and OKP (Ed25519) are used`,
	}
	if len(got.skipped) != len(wantSkipped) {
		t.Fatalf("skipped:\n%s\nwant %d lines", strings.Join(got.skipped, "\n"), len(wantSkipped))
	}
	for i, w := range wantSkipped {
		if !strings.HasPrefix(got.skipped[i], w) {
			t.Errorf("skipped[%d] = %q, want prefix %q", i, got.skipped[i], w)
		}
	}

	// MaxKeys counts kept keys only.
	got, err = parseJWKS([]byte(set), 2)
	if err != nil || len(got.keys) != 2 || got.skipped[len(got.skipped)-1] != "keys 2 to 11: more than the 2 keys kept" {
		t.Fatalf("maxKeys 2: %d keys, %q, %v", len(got.keys), got.skipped, err)
	}
}

func TestParseJWKSRefusesPrivateMaterial(t *testing.T) {
	for _, member := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv", "D", "Qi"} {
		t.Run(member, func(t *testing.T) {
			doc := `{"keys":[` + mustJSON(t, rsaJWK(0, "k1")) + `,{"kty":"RSA","use":"enc","kid":"x","` + member + `":"AQAB"}]}`
			_, err := parseJWKS([]byte(doc), 100)
			if !errors.Is(err, ErrPrivateKeyMaterial) || !strings.Contains(err.Error(), `key 1 has the private or symmetric key parameter "`+member+`"`) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestParseMaxAge(t *testing.T) {
	for _, tc := range []struct {
		headers map[string][]string
		want    time.Duration
		ok      bool
	}{
		{map[string][]string{"Cache-Control": {"public, max-age=3600"}}, time.Hour, true},
		{map[string][]string{"Cache-Control": {"public", "Max-Age=60, must-revalidate"}}, time.Minute, true},
		{map[string][]string{"Cache-Control": {`max-age="120"`}}, 2 * time.Minute, true},
		{map[string][]string{"Cache-Control": {"max-age=600"}, "Age": {"100"}}, 500 * time.Second, true},
		{map[string][]string{"Cache-Control": {"max-age=600"}, "Age": {"9000"}}, 0, true},
		{map[string][]string{"Cache-Control": {"no-cache"}}, 0, true},
		{map[string][]string{"Cache-Control": {"max-age=-5, max-age=x"}}, 0, false},
		{map[string][]string{"Cache-Control": {"max-age=99999999999999999999"}}, 0, false},
		{map[string][]string{"Cache-Control": {"max-age=9999999999"}}, (1 << 31) * time.Second, true},
		{map[string][]string{"Expires": {"Thu, 01 Dec 2094 16:00:00 GMT"}}, 0, false},
	} {
		h := http.Header{}
		for k, vs := range tc.headers {
			for _, v := range vs {
				h.Add(k, v)
			}
		}
		got, ok := parseMaxAge(h)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%v: got %s, %v; want %s, %v", tc.headers, got, ok, tc.want, tc.ok)
		}
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Reasons for skipped keys are bounded, and long kids are cut, since both
// reach logs and error messages.
func TestParseJWKSBoundsReasons(t *testing.T) {
	long := strings.Repeat("x", 1000)
	entries := []string{`{"kty":"oct","kid":"` + long + `"}`}
	for range 500 {
		entries = append(entries, `{"kty":"RSA","use":"enc"}`)
	}
	got, err := parseJWKS([]byte(`{"keys":[`+strings.Join(entries, ",")+`]}`), 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.skipped) != maxSkipReasons+1 || got.skipped[maxSkipReasons] != "and 481 more keys skipped" {
		t.Fatalf("%d reasons, last %q", len(got.skipped), got.skipped[len(got.skipped)-1])
	}
	if want := `key 0 (kid "` + strings.Repeat("x", 64) + `"...): kty "oct"`; !strings.HasPrefix(got.skipped[0], want) {
		t.Fatalf("skipped[0] = %.200q, want prefix %q", got.skipped[0], want)
	}
}
