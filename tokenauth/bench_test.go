package tokenauth_test

import (
	"context"
	"testing"

	"github.com/wif-project/wif/tokenauth"
)

// BenchmarkValidate measures one token validated repeatedly: "cached" is
// the verified-token cache's hit path, "uncached" a full parse and RSA
// verification each time.
func BenchmarkValidate(b *testing.B) {
	f := newFixture(b)
	tok := f.rs(b, nil)
	for _, tc := range []struct {
		name string
		size int
	}{{"cached", 0}, {"uncached", -1}} {
		b.Run(tc.name, func(b *testing.B) {
			v, err := tokenauth.New(f.cfg(func(c *tokenauth.Config) { c.CacheSize = tc.size }))
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if _, err := v.Validate(ctx, tok); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := v.Validate(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkValidateParallel is the cached path under contention.
func BenchmarkValidateParallel(b *testing.B) {
	f := newFixture(b)
	tok := f.rs(b, nil)
	v, err := tokenauth.New(f.cfg(nil))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Validate(context.Background(), tok); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
