package graph

import (
	"fmt"
	"strings"
	"unicode"
)

// maxFilterLen bounds a $filter expression.
const maxFilterLen = 2048

// maxFilterDepth bounds the nesting of parentheses and not.
const maxFilterDepth = 16

// filter is a parsed OData $filter: the subset Graph clients send for
// applications and service principals — eq, ne, startswith, any() over a
// collection, in, and, or, not and parentheses — evaluated over an
// object's JSON properties, comparing strings case-insensitively as Graph
// does for these properties.
type filter interface {
	match(obj map[string]any) bool
}

// FilterError is a $filter Graph would refuse.
type FilterError struct{ Msg string }

func (e *FilterError) Error() string { return e.Msg }

type (
	andF struct{ l, r filter }
	orF  struct{ l, r filter }
	notF struct{ f filter }
	cmpF struct{ prop, op, lit string }
	inF  struct {
		prop string
		lits []string
	}
	swF   struct{ prop, lit string }
	anyF  struct{ prop, lit string }
	trueF struct{}
)

func (f andF) match(o map[string]any) bool { return f.l.match(o) && f.r.match(o) }
func (f orF) match(o map[string]any) bool  { return f.l.match(o) || f.r.match(o) }
func (f notF) match(o map[string]any) bool { return !f.f.match(o) }
func (trueF) match(map[string]any) bool    { return true }

func (f cmpF) match(o map[string]any) bool {
	eq := strings.EqualFold(str(o[f.prop]), f.lit)
	if f.op == "ne" {
		return !eq
	}
	return eq
}

func (f inF) match(o map[string]any) bool {
	v := str(o[f.prop])
	for _, l := range f.lits {
		if strings.EqualFold(v, l) {
			return true
		}
	}
	return false
}

func (f swF) match(o map[string]any) bool {
	v := str(o[f.prop])
	return len(v) >= len(f.lit) && strings.EqualFold(v[:len(f.lit)], f.lit)
}

func (f anyF) match(o map[string]any) bool {
	switch vs := o[f.prop].(type) {
	case []string:
		for _, v := range vs {
			if strings.EqualFold(v, f.lit) {
				return true
			}
		}
	case []any:
		for _, v := range vs {
			if strings.EqualFold(str(v), f.lit) {
				return true
			}
		}
	}
	return false
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// parseFilter parses expr for an entity whose filterable properties are
// props (scalar) and collections; "" matches everything.
func parseFilter(expr string, props, collections []string) (filter, error) {
	if strings.TrimSpace(expr) == "" {
		return trueF{}, nil
	}
	if len(expr) > maxFilterLen {
		return nil, &FilterError{fmt.Sprintf("The $filter is longer than %d characters.", maxFilterLen)}
	}
	p := &parser{in: expr, props: props, colls: collections}
	f, err := p.or(0)
	if err != nil {
		return nil, err
	}
	if p.skip(); p.pos != len(p.in) {
		return nil, p.errorf("unexpected %q", clip(p.in[p.pos:], 20))
	}
	return f, nil
}

type parser struct {
	in           string
	pos          int
	props, colls []string
}

func (p *parser) errorf(format string, args ...any) error {
	return &FilterError{"Invalid filter clause: " + fmt.Sprintf(format, args...) + " at position " + fmt.Sprint(p.pos) + "."}
}

func (p *parser) skip() {
	for p.pos < len(p.in) && p.in[p.pos] == ' ' {
		p.pos++
	}
}

// word reads an identifier (letters, digits, '/', '_', '.') or returns "".
func (p *parser) word() string {
	p.skip()
	start := p.pos
	for p.pos < len(p.in) {
		c := rune(p.in[p.pos])
		if c < 128 && (unicode.IsLetter(c) || unicode.IsDigit(c) || c == '_' || c == '.' || c == '/') {
			p.pos++
			continue
		}
		break
	}
	return p.in[start:p.pos]
}

// keyword consumes kw (case-insensitively) followed by a space or '(' .
func (p *parser) keyword(kw string) bool {
	p.skip()
	end := p.pos + len(kw)
	if end > len(p.in) || !strings.EqualFold(p.in[p.pos:end], kw) {
		return false
	}
	if end < len(p.in) && p.in[end] != ' ' && p.in[end] != '(' {
		return false
	}
	p.pos = end
	return true
}

func (p *parser) expect(c byte) error {
	p.skip()
	if p.pos >= len(p.in) || p.in[p.pos] != c {
		return p.errorf("expected %q", c)
	}
	p.pos++
	return nil
}

func (p *parser) literal() (string, error) {
	p.skip()
	if p.pos >= len(p.in) || p.in[p.pos] != '\'' {
		return "", p.errorf("expected a string literal in single quotes")
	}
	p.pos++
	var b strings.Builder
	for p.pos < len(p.in) {
		c := p.in[p.pos]
		p.pos++
		if c == '\'' {
			if p.pos < len(p.in) && p.in[p.pos] == '\'' { // '' is a quote
				b.WriteByte('\'')
				p.pos++
				continue
			}
			return b.String(), nil
		}
		b.WriteByte(c)
	}
	return "", p.errorf("unterminated string literal")
}

func (p *parser) or(depth int) (filter, error) {
	l, err := p.and(depth)
	if err != nil {
		return nil, err
	}
	for p.keyword("or") {
		r, err := p.and(depth)
		if err != nil {
			return nil, err
		}
		l = orF{l, r}
	}
	return l, nil
}

func (p *parser) and(depth int) (filter, error) {
	l, err := p.unary(depth)
	if err != nil {
		return nil, err
	}
	for p.keyword("and") {
		r, err := p.unary(depth)
		if err != nil {
			return nil, err
		}
		l = andF{l, r}
	}
	return l, nil
}

func (p *parser) unary(depth int) (filter, error) {
	if depth > maxFilterDepth {
		return nil, p.errorf("nested too deeply")
	}
	if p.keyword("not") {
		f, err := p.unary(depth + 1)
		if err != nil {
			return nil, err
		}
		return notF{f}, nil
	}
	p.skip()
	if p.pos < len(p.in) && p.in[p.pos] == '(' {
		p.pos++
		f, err := p.or(depth + 1)
		if err != nil {
			return nil, err
		}
		return f, p.expect(')')
	}
	return p.clause()
}

func (p *parser) property(name string, collection bool) (string, error) {
	list := p.props
	if collection {
		list = p.colls
	}
	for _, want := range list {
		if strings.EqualFold(want, name) {
			return want, nil
		}
	}
	return "", &FilterError{fmt.Sprintf("Unsupported or invalid query filter clause specified for property '%s'.", clip(name, 60))}
}

// clause is startswith(prop,'x'), prop eq|ne 'x', prop in ('x','y') or
// coll/any(v:v eq 'x').
func (p *parser) clause() (filter, error) {
	w := p.word()
	if w == "" {
		return nil, p.errorf("expected a property or function")
	}
	if strings.EqualFold(w, "startswith") {
		if err := p.expect('('); err != nil {
			return nil, err
		}
		prop, err := p.property(p.word(), false)
		if err != nil {
			return nil, err
		}
		if err := p.expect(','); err != nil {
			return nil, err
		}
		lit, err := p.literal()
		if err != nil {
			return nil, err
		}
		return swF{prop, lit}, p.expect(')')
	}
	if coll, ok := cutSuffixFold(w, "/any"); ok {
		prop, err := p.property(coll, true)
		if err != nil {
			return nil, err
		}
		if err := p.expect('('); err != nil {
			return nil, err
		}
		v := p.word()
		if v == "" {
			return nil, p.errorf("expected a lambda variable")
		}
		if err := p.expect(':'); err != nil {
			return nil, err
		}
		if p.word() != v || !p.keyword("eq") {
			return nil, p.errorf("any() supports only %s:%s eq 'value'", v, v)
		}
		lit, err := p.literal()
		if err != nil {
			return nil, err
		}
		return anyF{prop, lit}, p.expect(')')
	}
	prop, err := p.property(w, false)
	if err != nil {
		return nil, err
	}
	switch {
	case p.keyword("eq"):
		lit, err := p.literal()
		return cmpF{prop, "eq", lit}, err
	case p.keyword("ne"):
		lit, err := p.literal()
		return cmpF{prop, "ne", lit}, err
	case p.keyword("in"):
		if err := p.expect('('); err != nil {
			return nil, err
		}
		var lits []string
		for {
			lit, err := p.literal()
			if err != nil {
				return nil, err
			}
			lits = append(lits, lit)
			p.skip()
			if p.pos < len(p.in) && p.in[p.pos] == ',' {
				p.pos++
				continue
			}
			return inF{prop, lits}, p.expect(')')
		}
	}
	return nil, p.errorf("expected eq, ne or in after %s", prop)
}

func cutSuffixFold(s, suffix string) (string, bool) {
	if len(s) > len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix) {
		return s[:len(s)-len(suffix)], true
	}
	return s, false
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
