package graph

import (
	"testing"
)

func TestFilter(t *testing.T) {
	obj := map[string]any{"displayName": "Managed-Identity-Test", "appId": "0ea4d539-3998-43a6-b30d-317889dc34cd",
		"identifierUris": []any{"api://provider-api"}, "servicePrincipalNames": []string{"0ea4d539-3998-43a6-b30d-317889dc34cd"}}
	props, colls := []string{"displayName", "appId", "id"}, []string{"identifierUris", "servicePrincipalNames"}
	for _, tc := range []struct {
		expr string
		want bool
	}{
		{"", true},
		{"displayName eq 'managed-identity-test'", true}, // case-insensitive, as Graph compares these
		{"displayName eq 'managed-identity'", false},
		{"displayName ne 'x'", true},
		{"startswith(displayName,'managed')", true},
		{"startswith(displayName, 'identity')", false},
		{"startswith(displayName,'Managed-Identity-Test-and-more')", false},
		{"appId eq '0EA4D539-3998-43A6-B30D-317889DC34CD'", true},
		{"identifierUris/any(s:s eq 'api://provider-api')", true},
		{"identifierUris/any(x: x eq 'api://other')", false},
		{"servicePrincipalNames/any(c:c eq '0ea4d539-3998-43a6-b30d-317889dc34cd')", true},
		{"displayName eq 'x' or appId eq '0ea4d539-3998-43a6-b30d-317889dc34cd'", true},
		{"displayName eq 'x' or displayName eq 'y' and appId eq 'z'", false},
		{"(displayName eq 'x' or displayName eq 'managed-identity-test') and not (appId eq 'z')", true},
		{"not displayName eq 'managed-identity-test'", false},
		{"displayName in ('a', 'MANAGED-identity-test')", true},
		{"displayName eq 'it''s'", false},
		{"DISPLAYNAME EQ 'managed-identity-test'", true},
	} {
		f, err := parseFilter(tc.expr, props, colls)
		if err != nil {
			t.Errorf("%q: %v", tc.expr, err)
			continue
		}
		if got := f.match(obj); got != tc.want {
			t.Errorf("%q matched %v, want %v", tc.expr, got, tc.want)
		}
	}
	quoted, err := parseFilter("displayName eq 'it''s'", props, colls)
	if err != nil || !quoted.match(map[string]any{"displayName": "it's"}) {
		t.Errorf("'' is not a quote: %v", err)
	}
	for expr, msg := range map[string]string{
		"displayName eq x":                     "Invalid filter clause: expected a string literal in single quotes at position 15.",
		"secret eq 'x'":                        "Unsupported or invalid query filter clause specified for property 'secret'.",
		"identifierUris eq 'x'":                "Unsupported or invalid query filter clause specified for property 'identifierUris'.",
		"displayName/any(s:s eq 'x')":          "Unsupported or invalid query filter clause specified for property 'displayName'.",
		"startswith(displayName,'x'":           "Invalid filter clause: expected ')' at position 26.",
		"displayName gt 'a'":                   "Invalid filter clause: expected eq, ne or in after displayName at position 12.",
		"displayName eq 'a' xor appId eq 'b'":  "Invalid filter clause: unexpected \"xor appId eq 'b'\" at position 19.",
		"displayName eq 'unterminated":         "Invalid filter clause: unterminated string literal at position 28.",
		"identifierUris/any(s:t eq 'x')":       "Invalid filter clause: any() supports only s:s eq 'value' at position 22.",
		"((((((((((((((((((displayName eq 'x'": "Invalid filter clause: nested too deeply at position 17.",
	} {
		_, err := parseFilter(expr, props, colls)
		if err == nil || err.Error() != msg {
			t.Errorf("%q: error %v, want %q", expr, err, msg)
		}
	}
}

// FuzzFilter: any $filter parses or is refused with a FilterError, and a
// parsed one evaluates without panicking.
func FuzzFilter(f *testing.F) {
	for _, s := range []string{"displayName eq 'x'", "startswith(displayName,'a') and appId ne 'b'", "identifierUris/any(s:s eq 'api://x')",
		"not (a eq 'b' or displayName in ('c','d'))", "displayName eq 'it''s'", "(((", "'"} {
		f.Add(s)
	}
	obj := map[string]any{"displayName": "x", "identifierUris": []any{"api://x", 3}, "appId": 7}
	f.Fuzz(func(t *testing.T, expr string) {
		flt, err := parseFilter(expr, []string{"displayName", "appId"}, []string{"identifierUris"})
		if err != nil {
			if _, ok := err.(*FilterError); !ok {
				t.Fatalf("%q: error %T %v", expr, err, err)
			}
			return
		}
		flt.match(obj)
	})
}

func TestDisplayNamePrefix(t *testing.T) {
	for expr, want := range map[string]string{
		"startswith(displayName,'managed')":                          "managed",
		"displayName eq 'managed-identity-test'":                     "managed-identity-test",
		"appId eq 'x' and startswith(displayName,'m')":               "m",
		"startswith(displayName,'a') or startswith(displayName,'b')": "",
		"not startswith(displayName,'a')":                            "",
		"displayName ne 'a'":                                         "",
		"appId eq 'x'":                                               "",
		"":                                                           "",
	} {
		f, err := parseFilter(expr, spProps, spColls)
		if err != nil {
			t.Fatalf("%q: %v", expr, err)
		}
		if got := displayNamePrefix(f); got != want {
			t.Errorf("%q: prefix %q, want %q", expr, got, want)
		}
	}
}
