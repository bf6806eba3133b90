package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The gateway selects a route on exactly the path it forwards. A request
// path is normalized once, before route selection: percent-encoding is
// decoded once; what backends disagree about is refused rather than guessed
// (an encoded '/' or '\', a raw '\', an encoded or parameter-carrying dot
// segment, double encoding, control bytes, invalid UTF-8 — as Envoy's
// path_with_escaped_slashes_action: REJECT_REQUEST); '.' and '..' are
// resolved and duplicate slashes merged. Prefixes then match case-
// insensitively, as API Management matches an API's URL suffix, with ';'
// (a path parameter, which Tomcat and others strip) ending a segment like
// '/'. The backend receives the normalized path, re-encoded.

// pathError is a refusal of a request path: a 400 that says what was wrong.
type pathError struct{ msg string }

func (e *pathError) Error() string { return e.msg }

func badPath(format string, args ...any) error {
	return &pathError{msg: fmt.Sprintf(format, args...)}
}

// requestPath returns the escaped path of r exactly as it came on the wire.
func requestPath(r *http.Request) (string, error) {
	uri := r.RequestURI
	if uri == "" {
		return r.URL.EscapedPath(), nil
	}
	if uri == "*" {
		return "", badPath("the request target * is not a path")
	}
	if !strings.HasPrefix(uri, "/") {
		// absolute-form: scheme://authority/path?query
		scheme, rest, ok := strings.Cut(uri, "://")
		if !ok || !(strings.EqualFold(scheme, "http") || strings.EqualFold(scheme, "https")) {
			return "", badPath("the request target is neither a path nor an absolute http(s) URL")
		}
		i := strings.IndexAny(rest, "/?")
		if i < 0 || rest[i] == '?' {
			return "/", nil
		}
		uri = rest[i:]
	}
	if i := strings.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	return uri, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// normalizePath decodes an escaped request path once and normalizes it, or
// refuses it (a *pathError) when backends could read it differently.
func normalizePath(escaped string) (string, error) {
	if !strings.HasPrefix(escaped, "/") {
		return "", badPath("the path must start with '/'")
	}
	if isPlainPath(escaped) {
		return escaped, nil
	}
	// Decode once, segment by segment, remembering which segments held an
	// encoded '.'.
	var segs []string
	var encodedDot []bool
	var cur strings.Builder
	dot := false
	flush := func() {
		segs = append(segs, cur.String())
		encodedDot = append(encodedDot, dot)
		cur.Reset()
		dot = false
	}
	for i := 1; i < len(escaped); i++ {
		c := escaped[i]
		switch c {
		case '/':
			flush()
			continue
		case '\\':
			return "", badPath("the path holds a '\\': some servers read it as '/', so it is refused")
		case '%':
			if i+2 >= len(escaped) {
				return "", badPath("the path holds a '%%' that is not followed by two hex digits")
			}
			hi, ok1 := unhex(escaped[i+1])
			lo, ok2 := unhex(escaped[i+2])
			if !ok1 || !ok2 {
				return "", badPath("the path holds a '%%' that is not followed by two hex digits")
			}
			c = hi<<4 | lo
			i += 2
			switch c {
			case '/':
				return "", badPath("the path holds an encoded '/' (%%2F): servers disagree on whether it separates segments, so it is refused")
			case '\\':
				return "", badPath("the path holds an encoded '\\' (%%5C): some servers read it as '/', so it is refused")
			case '.':
				dot = true
			case '%':
				if i+2 < len(escaped) {
					if _, ok := unhex(escaped[i+1]); ok {
						if _, ok := unhex(escaped[i+2]); ok {
							return "", badPath("the path is percent-encoded twice (%%25 followed by hex digits): servers that decode again would see another path, so it is refused")
						}
					}
				}
			}
		}
		if c < 0x20 || c == 0x7f {
			return "", badPath("the path holds a control character (byte 0x%02x)", c)
		}
		cur.WriteByte(c)
	}
	flush()
	var out []string
	for i, s := range segs {
		name, _, params := strings.Cut(s, ";")
		isDot := name == "." || name == ".."
		switch {
		case isDot && encodedDot[i]:
			return "", badPath("the path holds an encoded dot segment (%%2E): servers disagree on resolving it, so it is refused")
		case isDot && params:
			return "", badPath("the path holds a dot segment with parameters (%q): servers that strip ';' parameters would resolve it, so it is refused", s)
		case s == "" || s == ".":
			// duplicate slash or '.': merged
		case s == "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, s)
		}
	}
	p := "/" + strings.Join(out, "/")
	if last := segs[len(segs)-1]; len(out) > 0 && (last == "" || last == "." || last == "..") {
		p += "/"
	}
	if !utf8.ValidString(p) {
		return "", badPath("the decoded path is not valid UTF-8")
	}
	return p, nil
}

// isPlainPath reports whether p is already normalized: no escapes, no '\\',
// ';' or control bytes, no empty or dot segments. Most requests are; they
// cost one scan and no allocation.
func isPlainPath(p string) bool {
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '%' || c == '\\' || c == ';' || c < 0x20 || c >= 0x7f:
			return false
		case c == '/':
			if i > 0 && p[i-1] == '/' {
				return false
			}
		case c == '.':
			// a segment that is "." or ".."
			start := i == 0 || p[i-1] == '/'
			if start && (i+1 == len(p) || p[i+1] == '/' || (p[i+1] == '.' && (i+2 == len(p) || p[i+2] == '/'))) {
				return false
			}
		}
	}
	return true
}

// normalizePrefix normalizes a route's configured path prefix with the rules
// requests follow.
func normalizePrefix(prefix string) (string, error) {
	p, err := normalizePath(prefix)
	if err != nil {
		var pe *pathError
		if errors.As(err, &pe) {
			return "", errors.New(pe.msg)
		}
		return "", err
	}
	if strings.Contains(p, ";") {
		return "", errors.New("a ';' in a path prefix would never match: requests split segments at ';'")
	}
	return p, nil
}

// matchPrefix reports whether path starts with prefix, comparing letters
// case-insensitively (Unicode simple folding), on a segment boundary ('/'
// or ';' next, or the prefix ends in '/'); n is the length of the matched
// part of path in bytes.
func matchPrefix(path, prefix string) (n int, ok bool) {
	i, j := 0, 0
	for j < len(prefix) {
		if i >= len(path) {
			return 0, false
		}
		pr, ps := utf8.DecodeRuneInString(path[i:])
		qr, qs := utf8.DecodeRuneInString(prefix[j:])
		if pr != qr && !equalFoldRune(pr, qr) {
			return 0, false
		}
		i, j = i+ps, j+qs
	}
	if i == len(path) || strings.HasSuffix(prefix, "/") || path[i] == '/' || path[i] == ';' {
		return i, true
	}
	return 0, false
}

// equalFoldRune reports whether a and b are the same letter under Unicode
// simple case folding (as strings.EqualFold compares).
func equalFoldRune(a, b rune) bool {
	for r := unicode.SimpleFold(a); r != a; r = unicode.SimpleFold(r) {
		if r == b {
			return true
		}
	}
	return false
}

// stripPathParams removes each segment's ';' parameters from a normalized
// path and merges the empty segments that leaves, as servers that ignore
// path parameters read it.
func stripPathParams(p string) string {
	segs := strings.Split(p, "/")
	out := segs[:0]
	for i, s := range segs {
		s, _, _ = strings.Cut(s, ";")
		if s != "" || i == len(segs)-1 {
			out = append(out, s)
		}
	}
	return "/" + strings.TrimPrefix(strings.Join(out, "/"), "/")
}
