package trust

import (
	"context"
	"testing"
)

// BenchmarkKeyHit is a lookup of a cached kid: the token endpoint's and the
// gateway's per-request cost. It must not allocate.
func BenchmarkKeyHit(b *testing.B) {
	c, src := benchCache(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Key(ctx, src, "k1"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKeyHitParallel is the same lookup from all cores at once.
func BenchmarkKeyHitParallel(b *testing.B) {
	c, src := benchCache(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Key(ctx, src, "k1"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// benchCache is a cache primed with ten keys of a loopback TLS issuer,
// with nine other sources present, on the real clock.
func benchCache(b *testing.B) (*Cache, Source) {
	ti := newTestIssuer(b, rsaJWK(0, "k0"), rsaJWK(1, "k1"), rsaJWK(2, "k2"), ecJWK(b, "e3"), ecJWK(b, "e4"),
		ecJWK(b, "e5"), ecJWK(b, "e6"), ecJWK(b, "e7"), ecJWK(b, "e8"), ecJWK(b, "e9"))
	c := New(Options{HTTPClient: ti.srv.Client()})
	b.Cleanup(c.Close)
	for i := range 9 {
		if _, err := c.entry(Source{DiscoveryURL: ti.srv.URL + "/other/" + string(rune('a'+i))}); err != nil {
			b.Fatal(err)
		}
	}
	src := ti.source()
	if err := c.Refresh(context.Background(), src); err != nil {
		b.Fatal(err)
	}
	return c, src
}

// BenchmarkKeyUnknownKIDCooldown is a lookup of an unknown kid within the
// refetch cooldown: what a flood of tokens with made-up kids costs.
func BenchmarkKeyUnknownKIDCooldown(b *testing.B) {
	c, src := benchCache(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Key(ctx, src, "made-up"); err == nil {
			b.Fatal("found a made-up kid")
		}
	}
}
