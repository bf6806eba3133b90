// Package jwtdump decodes a JWT for people to read: header and claims
// pretty-printed in their original order, times as dates with "expires in"
// or "expired ... ago". It never validates anything — the signature is not
// checked — and says so in its output.
package jwtdump

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// MaxTokenBytes bounds the input Decode accepts.
const MaxTokenBytes = 1 << 20

// Decoded is a JWT's header and claims as they came.
type Decoded struct {
	// Header and Claims are the JSON objects of the first two segments.
	Header json.RawMessage
	Claims json.RawMessage
	// SignatureBytes is the length of the decoded signature.
	SignatureBytes int
	times          []timeClaim
}

type timeClaim struct {
	name string
	at   time.Time
}

// ErrNotJWT is wrapped by every error Decode returns for input that is not
// a JWS compact serialization.
var ErrNotJWT = errors.New("not a JWT")

// Decode parses a compact JWS (three base64url segments separated by '.').
// Surrounding white space and a leading "Bearer " are ignored.
func Decode(data []byte) (*Decoded, error) {
	if len(data) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: input is %d bytes, more than the %d a token can be", ErrNotJWT, len(data), MaxTokenBytes)
	}
	s := strings.TrimSpace(string(data))
	if len(s) > 7 && strings.EqualFold(s[:7], "bearer ") {
		s = strings.TrimSpace(s[7:])
	}
	if s == "" {
		return nil, fmt.Errorf("%w: the input is empty", ErrNotJWT)
	}
	parts := strings.Split(s, ".")
	switch len(parts) {
	case 3:
	case 5:
		return nil, fmt.Errorf("%w: five segments is an encrypted token (JWE), which cannot be read without its key", ErrNotJWT)
	default:
		return nil, fmt.Errorf("%w: expected three base64url segments separated by '.', got %d segment(s)", ErrNotJWT, len(parts))
	}
	hdr, err := segment("header", parts[0])
	if err != nil {
		return nil, err
	}
	claims, err := segment("claims", parts[1])
	if err != nil {
		return nil, err
	}
	sig, err := decodeB64("signature", parts[2])
	if err != nil {
		return nil, err
	}
	d := &Decoded{Header: hdr, Claims: claims, SignatureBytes: len(sig)}
	var m map[string]json.RawMessage
	_ = json.Unmarshal(claims, &m) // segment checked it is an object
	for _, name := range []string{"iat", "nbf", "exp"} {
		raw, ok := m[name]
		if !ok {
			continue
		}
		var f float64
		if json.Unmarshal(raw, &f) != nil || math.IsNaN(f) || f < 0 || f > 253402300799 { // up to year 9999
			continue // shown as it came in the claims; not a usable date
		}
		sec, frac := math.Modf(f)
		d.times = append(d.times, timeClaim{name, time.Unix(int64(sec), int64(frac*1e9)).UTC()})
	}
	return d, nil
}

func decodeB64(what, seg string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		return nil, fmt.Errorf("%w: the %s segment is not base64url: %v", ErrNotJWT, what, err)
	}
	return b, nil
}

func segment(what, seg string) (json.RawMessage, error) {
	b, err := decodeB64(what, seg)
	if err != nil {
		return nil, err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil || obj == nil {
		return nil, fmt.Errorf("%w: the %s segment is not a JSON object", ErrNotJWT, what)
	}
	return json.RawMessage(b), nil
}

// Render writes the decoded token for people: header, claims, the times
// relative to now, and a reminder that nothing was verified.
func (d *Decoded) Render(w io.Writer, now time.Time) error {
	return d.render(w, now, "not checked (this command decodes; it never validates)")
}

// RenderForCheck is Render for a token whose validation follows (wif token
// decode --check).
func (d *Decoded) RenderForCheck(w io.Writer, now time.Time) error {
	return d.render(w, now, "checked below")
}

func (d *Decoded) render(w io.Writer, now time.Time, note string) error {
	var b bytes.Buffer
	b.WriteString("Header:\n")
	writeIndented(&b, d.Header)
	b.WriteString("Claims:\n")
	writeIndented(&b, d.Claims)
	if len(d.times) > 0 {
		b.WriteString("Times:\n")
		for _, t := range d.times {
			fmt.Fprintf(&b, "  %s  %s  (%s)\n", t.name, t.at.Format(time.RFC3339), relative(t.name, t.at, now))
		}
	}
	fmt.Fprintf(&b, "Signature: %d bytes, %s.\n", d.SignatureBytes, note)
	_, err := w.Write(b.Bytes())
	return err
}

func writeIndented(b *bytes.Buffer, raw json.RawMessage) {
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		out.Write(raw) // Decode checked it is JSON; keep it verbatim if not
	}
	b.Write(out.Bytes())
	b.WriteByte('\n')
}

func relative(name string, at, now time.Time) string {
	d := at.Sub(now)
	switch name {
	case "exp":
		if d > 0 {
			return "expires in " + human(d)
		}
		return "expired " + human(-d) + " ago"
	case "nbf":
		if d > 0 {
			return "not valid for another " + human(d)
		}
		return "valid since " + human(-d) + " ago"
	default:
		if d > 0 {
			return "issued in the future, in " + human(d)
		}
		return "issued " + human(-d) + " ago"
	}
}

// human renders a duration at the precision people read: "42s", "3m",
// "1h5m", "2d3h".
func human(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int64(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int64(d/time.Minute))
	case d < 24*time.Hour:
		h, m := int64(d/time.Hour), int64(d%time.Hour/time.Minute)
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m)
	default:
		days, h := int64(d/(24*time.Hour)), int64(d%(24*time.Hour)/time.Hour)
		if h == 0 {
			return fmt.Sprintf("%dd", days)
		}
		return fmt.Sprintf("%dd%dh", days, h)
	}
}
