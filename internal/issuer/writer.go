package issuer

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/wif-project/wif/internal/tlsutil"
)

// DefaultFileMode is the mode of token files Writer writes. The kubelet
// writes projected tokens 0644, because inside a pod only the pod's
// containers can see the volume; on a laptop or VM other users can, so wif
// writes 0600 by default (Writer.Mode / --file-mode 0644 when another user,
// e.g. a container, must read it).
const DefaultFileMode os.FileMode = 0o600

// MaxRefreshAge is how old a token may get before it is replaced whatever
// its lifetime, as the kubelet does.
const MaxRefreshAge = 24 * time.Hour

// MinRefreshMargin is the least time a token has left when it is
// replaced: with the short lifetimes of tests and drills, 20 % of the
// lifetime is less time than a loaded machine may take to wake the
// writer. (Kubernetes tokens live 10 minutes at least, so the kubelet's
// 80 % always leaves more.)
const MinRefreshMargin = 2 * time.Second

// RefreshAt is when a token should be replaced: at 80 % of its lifetime or
// after MaxRefreshAge, whichever comes first — the kubelet's rule — but
// never later than MinRefreshMargin before it expires.
func RefreshAt(t Token) time.Time {
	iat, exp := t.IssuedAt(), t.Expiry()
	life := exp.Sub(iat)
	d := life * 8 / 10
	if d > MaxRefreshAge {
		d = MaxRefreshAge
	}
	if life > 2*MinRefreshMargin && life-d < MinRefreshMargin {
		d = life - MinRefreshMargin
	}
	return iat.Add(d)
}

// Writer keeps a token file fresh like the kubelet keeps a projected
// service-account token: each new token replaces the file atomically (a
// rename, so readers never see half a token), at 80 % of the lifetime.
type Writer struct {
	// Issuer mints the tokens (required).
	Issuer *Issuer
	// Request says whom the tokens are for.
	Request TokenRequest
	// Path is the file to keep fresh (required).
	Path string
	// Mode is the file's mode (default DefaultFileMode).
	Mode os.FileMode
	// Now and After are the clock (defaults time.Now, time.After); tests
	// replace them.
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
	// Logger receives one line per write (claims, never the token).
	Logger *slog.Logger
	// OnWrite, if set, is called after each successful write.
	OnWrite func(Token)
}

// retryDelay is how long Run waits after a failed write before trying again.
const retryDelay = time.Second

// WriteOnce mints a token and writes it to Path.
func (w *Writer) WriteOnce() (Token, error) {
	if w.Issuer == nil || w.Path == "" {
		return Token{}, fmt.Errorf("token writer: issuer and path are required")
	}
	tok, err := w.Issuer.Mint(w.Request)
	if err != nil {
		return Token{}, err
	}
	mode := w.Mode
	if mode == 0 {
		mode = DefaultFileMode
	}
	if err := tlsutil.WriteFileAtomic(w.Path, []byte(tok.Raw), mode); err != nil {
		return Token{}, fmt.Errorf("write token file: %w", err)
	}
	if w.Logger != nil {
		sum := sha256.Sum256([]byte(tok.Raw))
		w.Logger.Debug("token file written", "path", w.Path, "sub", tok.Claims.Subject,
			"exp", tok.Expiry().UTC().Format(time.RFC3339), "refresh_at", RefreshAt(tok).UTC().Format(time.RFC3339),
			"token_sha256", fmt.Sprintf("%x", sum[:8]))
	}
	if w.OnWrite != nil {
		w.OnWrite(tok)
	}
	return tok, nil
}

// Run writes a token now (returning the error if that fails, so a bad
// request or an unwritable path is reported at once), then replaces it at
// each token's refresh time until ctx ends; it then returns nil. A later
// failed write is logged and retried every second while the current token
// is still valid.
func (w *Writer) Run(ctx context.Context) error {
	now, after := w.Now, w.After
	if now == nil {
		now = time.Now
	}
	if after == nil {
		after = time.After
	}
	tok, err := w.WriteOnce()
	if err != nil {
		return err
	}
	next := RefreshAt(tok)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-after(next.Sub(now())):
		}
		t, err := w.WriteOnce()
		if err != nil {
			if w.Logger != nil {
				w.Logger.Error("refresh token file", "path", w.Path, "err", err)
			}
			next = now().Add(retryDelay)
			continue
		}
		next = RefreshAt(t)
	}
}
