package directory

import (
	"strings"
	"testing"
)

func TestClaimsExpression(t *testing.T) {
	claims := map[string]any{
		"sub":              "repo:contoso/app:ref:refs/heads/main",
		"job_workflow_ref": "contoso/shared/.github/workflows/deploy.yml@refs/heads/main",
		"n":                5,
	}
	tests := []struct {
		expr  string
		match bool
	}{
		{"claims['sub'] matches 'repo:contoso/app:ref:refs/heads/*'", true},
		{"claims['sub'] matches 'repo:contoso/app:ref:refs/heads/mai?'", true},
		{"claims['sub'] matches 'repo:contoso/app:ref:refs/heads/ma?'", false},
		{"claims['sub'] matches 'repo:Contoso/app:*'", false},
		{"claims['sub'] eq 'repo:contoso/app:ref:refs/heads/main'", true},
		{"claims['sub'] eq 'repo:contoso/app:ref:refs/heads/*'", false},
		{"claims['sub'] matches 'repo:contoso/*' and claims['job_workflow_ref'] matches 'contoso/shared/*@refs/heads/main'", true},
		{"claims['sub'] matches 'repo:contoso/*' and claims['job_workflow_ref'] eq 'x'", false},
		{"claims['missing'] matches '*'", false},
		{"claims['n'] matches '*'", false},
		{"claims['sub'] matches '*'", true},
	}
	for _, tc := range tests {
		e, err := ParseClaimsExpression(tc.expr)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		if got := e.Match(claims); got != tc.match {
			t.Errorf("%s: match = %v, want %v", tc.expr, got, tc.match)
		}
	}
}

func TestClaimsExpressionErrors(t *testing.T) {
	tests := []struct{ expr, want string }{
		{"", "expected claims['<name>']"},
		{"claims[sub] matches 'x'", "single quotes"},
		{"claims['sub'] like 'x'", "operator 'matches' or 'eq'"},
		{"claims['sub'] matches x", "single quotes"},
		{"claims['sub'] matches 'x", "not closed"},
		{"claims['sub'] matches 'x' or claims['a'] eq 'b'", "expected 'and'"},
		{"claims[''] eq 'x'", "claim name is empty"},
		{strings.Repeat("claims['a'] eq 'b' and ", 16) + "claims['a'] eq 'b'", "more than 16"},
	}
	for _, tc := range tests {
		_, err := ParseClaimsExpression(tc.expr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want it to mention %q", tc.expr, err, tc.want)
		}
	}
}

func TestWildcardMatchLinear(t *testing.T) {
	// A pattern built to make a backtracking matcher explode.
	p := strings.Repeat("*a", 30) + "b"
	s := strings.Repeat("a", 600)
	if wildcardMatch(p, s) {
		t.Fatal("matched")
	}
}

func FuzzParseClaimsExpression(f *testing.F) {
	f.Add("claims['sub'] matches 'repo:contoso/app:ref:refs/heads/*'")
	f.Add("claims['sub'] eq 'a' and claims['b'] matches '?*'")
	f.Add("claims['")
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseClaimsExpression(s)
		if err != nil {
			return
		}
		_ = e.Match(map[string]any{"sub": s})
		if len(e.Claims()) == 0 {
			t.Fatal("compiled expression with no comparisons")
		}
	})
}
