package jose_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/wif-project/wif/internal/jose"
	"github.com/wif-project/wif/internal/store/memory"
)

// The token service creates one Manager over its store, runs its
// maintenance loop, signs access tokens and serves the JWKS.
func ExampleManager() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logger := slog.New(slog.DiscardHandler) // the service's logger

	kek, err := jose.LoadKEK("/etc/wif/kek", logger) // 32 random bytes, raw, base64 or hex
	if err != nil {
		kek = nil // in this example only: run with keys in the clear (logged loudly)
	}
	m, err := jose.NewManager(ctx, jose.Options{
		Store:            memory.New(),
		KEK:              kek,
		MaxTokenLifetime: jose.DefaultMaxTokenLifetime,
		Logger:           logger,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	go m.Run(ctx) //nolint:errcheck // Run returns nil when ctx ends.

	token, err := m.SignClaims(map[string]any{"aud": "api://provider-api", "ver": "1.0"}, true)
	if err != nil {
		fmt.Println(err)
		return
	}
	payload, err := m.Verify(token)
	fmt.Println(string(payload), err)
	jwks, etag := m.JWKSWithETag() // serve with ETag; answer 304 to a matching If-None-Match
	_, _ = jwks, etag
	// Output: {"aud":"api://provider-api","ver":"1.0"} <nil>
}
