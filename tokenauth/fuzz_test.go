package tokenauth_test

import (
	"context"
	"errors"
	"testing"

	"github.com/wif-project/wif/tokenauth"
)

// FuzzValidate feeds arbitrary tokens to a validator: it must refuse them
// with a typed error (never panic), and accept only the one genuine token.
func FuzzValidate(f *testing.F) {
	fx := newFixture(f)
	good := fx.rs(f, nil)
	f.Add(good)
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Add("")
	v, err := tokenauth.New(fx.cfg(func(c *tokenauth.Config) { c.Algorithms = []string{"RS256", "PS256", "HS256"} }))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		claims, err := v.Validate(context.Background(), tok)
		if err == nil {
			if tok != good || claims == nil {
				t.Fatalf("accepted %q", tok)
			}
			return
		}
		var e *tokenauth.Error
		if !errors.As(err, &e) || e.Kind == 0 {
			t.Fatalf("untyped error %v", err)
		}
	})
}
