package tokenauth

import "fmt"

// Kind classifies why a token was refused.
type Kind int

// The kinds of failure. Callers branch on them with errors.As:
//
//	var e *tokenauth.Error
//	if errors.As(err, &e) && e.Kind == tokenauth.KindExpired { ... }
const (
	// KindMissing: no token was presented.
	KindMissing Kind = iota + 1
	// KindMalformed: the token is not a JWS compact JWT, uses a refused
	// algorithm or header, or its claims are not valid JSON.
	KindMalformed
	// KindExpired: the token's exp (plus the clock skew) is past, or it
	// has no exp and expiration is required.
	KindExpired
	// KindNotYetValid: the token's nbf is in the future (beyond the skew).
	KindNotYetValid
	// KindBadSignature: no trusted key verifies the signature.
	KindBadSignature
	// KindWrongIssuer: iss is not among the configured issuers.
	KindWrongIssuer
	// KindWrongAudience: no aud is among the configured audiences.
	KindWrongAudience
	// KindClaim: the token is authentic but a required claim is absent or
	// has none of (or not all of) the required values.
	KindClaim
	// KindKeysUnavailable: the keys could not be fetched and none are
	// cached; the token was neither accepted nor proven bad. Retry later.
	KindKeysUnavailable
)

var kindNames = map[Kind]string{
	KindMissing:         "missing",
	KindMalformed:       "malformed",
	KindExpired:         "expired",
	KindNotYetValid:     "not_yet_valid",
	KindBadSignature:    "bad_signature",
	KindWrongIssuer:     "wrong_issuer",
	KindWrongAudience:   "wrong_audience",
	KindClaim:           "claim",
	KindKeysUnavailable: "keys_unavailable",
}

// String returns a short snake_case name, usable as a metric label.
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Error is the typed failure every Validate call returns. Message is safe to
// show to the caller (it never contains the token or key material); Err, if
// set, is the underlying cause for logs.
type Error struct {
	Kind    Kind
	Message string
	Err     error
}

// Error returns "tokenauth: " and the message, with the cause if any.
func (e *Error) Error() string {
	if e.Err != nil {
		return "tokenauth: " + e.Message + ": " + e.Err.Error()
	}
	return "tokenauth: " + e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

func newErr(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}
