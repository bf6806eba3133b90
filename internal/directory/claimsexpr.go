package directory

import (
	"fmt"
	"strings"
)

// ClaimsExpression is a compiled claimsMatchingExpression (Entra's flexible
// federated credential language, version 1): one or more comparisons
// joined by "and", each of the form
//
//	claims['<name>'] matches '<pattern with * and ?>'
//	claims['<name>'] eq '<exact value>'
//
// A compiled expression is immutable and safe for concurrent use.
type ClaimsExpression struct {
	terms []claimTerm
}

type claimTerm struct {
	claim string
	op    string // "matches" or "eq"
	value string
}

// Maximum number of comparisons in one expression (ours).
const maxClaimTerms = 16

// ParseClaimsExpression compiles an expression, or says exactly where and why
// it is malformed.
func ParseClaimsExpression(s string) (*ClaimsExpression, error) {
	p := exprParser{src: s}
	var terms []claimTerm
	for {
		p.skipSpace()
		t, err := p.term()
		if err != nil {
			return nil, err
		}
		terms = append(terms, t)
		if len(terms) > maxClaimTerms {
			return nil, fmt.Errorf("has more than %d comparisons", maxClaimTerms)
		}
		p.skipSpace()
		if p.eof() {
			break
		}
		if !p.keyword("and") {
			return nil, p.errorf("expected 'and' or the end of the expression")
		}
	}
	return &ClaimsExpression{terms: terms}, nil
}

type exprParser struct {
	src string
	pos int
}

func (p *exprParser) eof() bool { return p.pos >= len(p.src) }

func (p *exprParser) skipSpace() {
	for p.pos < len(p.src) && (p.src[p.pos] == ' ' || p.src[p.pos] == '\t') {
		p.pos++
	}
}

func (p *exprParser) errorf(format string, args ...any) error {
	return fmt.Errorf("at character %d: %s (the form is claims['sub'] matches 'repo:contoso/app:*', joined by 'and')", p.pos+1, fmt.Sprintf(format, args...))
}

func (p *exprParser) keyword(k string) bool {
	if !strings.HasPrefix(p.src[p.pos:], k) {
		return false
	}
	end := p.pos + len(k)
	if end < len(p.src) && p.src[end] != ' ' && p.src[end] != '\t' {
		return false
	}
	p.pos = end
	return true
}

func (p *exprParser) quoted() (string, error) {
	if p.eof() || p.src[p.pos] != '\'' {
		return "", p.errorf("expected a value in single quotes")
	}
	end := strings.IndexByte(p.src[p.pos+1:], '\'')
	if end < 0 {
		return "", p.errorf("the quoted value is not closed")
	}
	v := p.src[p.pos+1 : p.pos+1+end]
	p.pos += end + 2
	return v, nil
}

func (p *exprParser) term() (claimTerm, error) {
	var t claimTerm
	if !strings.HasPrefix(p.src[p.pos:], "claims[") {
		return t, p.errorf("expected claims['<name>']")
	}
	p.pos += len("claims[")
	name, err := p.quoted()
	if err != nil {
		return t, err
	}
	if name == "" {
		return t, p.errorf("the claim name is empty")
	}
	if p.eof() || p.src[p.pos] != ']' {
		return t, p.errorf("expected ']' after the claim name")
	}
	p.pos++
	p.skipSpace()
	switch {
	case p.keyword("matches"):
		t.op = "matches"
	case p.keyword("eq"):
		t.op = "eq"
	default:
		return t, p.errorf("expected the operator 'matches' or 'eq'")
	}
	p.skipSpace()
	v, err := p.quoted()
	if err != nil {
		return t, err
	}
	t.claim, t.value = name, v
	return t, nil
}

// Match reports whether claims satisfy every comparison. A claim that is
// absent or not a string fails its comparison.
func (e *ClaimsExpression) Match(claims map[string]any) bool {
	for _, t := range e.terms {
		s, ok := claims[t.claim].(string)
		if !ok {
			return false
		}
		switch t.op {
		case "eq":
			if s != t.value {
				return false
			}
		case "matches":
			if !wildcardMatch(t.value, s) {
				return false
			}
		}
	}
	return true
}

// Claims lists the claim names the expression reads, in order.
func (e *ClaimsExpression) Claims() []string {
	out := make([]string, len(e.terms))
	for i, t := range e.terms {
		out[i] = t.claim
	}
	return out
}

// wildcardMatch matches s against pattern, where '*' stands for any run of
// characters and '?' for exactly one; everything else matches itself, case
// sensitively. It runs in O(len(pattern)*len(s)) at worst, with no
// backtracking blow-up.
func wildcardMatch(pattern, s string) bool {
	pr, sr := []rune(pattern), []rune(s)
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(sr) {
		switch {
		case pi < len(pr) && (pr[pi] == '?' || pr[pi] == sr[si]):
			pi++
			si++
		case pi < len(pr) && pr[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(pr) && pr[pi] == '*' {
		pi++
	}
	return pi == len(pr)
}
