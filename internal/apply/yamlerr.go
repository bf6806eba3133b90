package apply

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	yaml3 "go.yaml.in/yaml/v3"
)

// fieldError finds, in a document strict decoding refused, the first key
// that names no field: its line, column and path, and the nearest field
// name. It returns nil when it finds none (the caller keeps the decoder's
// error).
func fieldError(name string, data []byte) error {
	var root yaml3.Node
	if err := yaml3.Unmarshal(data, &root); err != nil {
		// A syntax error: yaml.v3 says where.
		return fmt.Errorf("parse %s: %w", name, err)
	}
	if len(root.Content) == 0 {
		return nil
	}
	return walk(name, root.Content[0], reflect.TypeFor[Document](), "")
}

func walk(name string, n *yaml3.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml3.AliasNode {
		// Not followed: nested aliases would make the walk exponential
		// (the strict decoder, which bounds aliasing, reports what is
		// under them).
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml3.MappingNode {
			return nil
		}
		fields := jsonFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f, ok := fields[strings.ToLower(k.Value)]
			if !ok {
				msg := fmt.Sprintf("%s:%d:%d: unknown field %q", name, k.Line, k.Column, k.Value)
				if path != "" {
					msg += " in " + path
				}
				if near := nearest(k.Value, fields); near != "" {
					msg += fmt.Sprintf("; did you mean %q?", near)
				} else {
					msg += "; fields here: " + strings.Join(names(fields), ", ")
				}
				return fmt.Errorf("%s", msg)
			}
			if err := walk(name, v, f.typ, join(path, f.name)); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml3.SequenceNode || t.Elem().Kind() == reflect.Uint8 {
			return nil
		}
		for i, c := range n.Content {
			if err := walk(name, c, t.Elem(), path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml3.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := walk(name, n.Content[i+1], t.Elem(), join(path, n.Content[i].Value)); err != nil {
				return err
			}
		}
	}
	return nil
}

type field struct {
	name string
	typ  reflect.Type
}

// jsonFields are a struct's JSON field names (lower-cased keys: JSON
// decoding matches case-insensitively), embedded structs flattened.
func jsonFields(t reflect.Type) map[string]field {
	out := map[string]field{}
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		nm, _, _ := strings.Cut(tag, ",")
		if nm == "-" {
			continue
		}
		if sf.Anonymous && nm == "" {
			et := sf.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				for k, v := range jsonFields(et) {
					out[k] = v
				}
				continue
			}
		}
		if !sf.IsExported() {
			continue
		}
		if nm == "" {
			nm = sf.Name
		}
		out[strings.ToLower(nm)] = field{name: nm, typ: sf.Type}
	}
	return out
}

func names(fields map[string]field) []string {
	var out []string
	for _, f := range fields {
		out = append(out, f.name)
	}
	sort.Strings(out)
	return out
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// nearest is the field name closest to s, if close enough to be a typo.
func nearest(s string, fields map[string]field) string {
	best, bestD := "", 1<<30
	for _, nm := range names(fields) {
		if d := distance(strings.ToLower(s), strings.ToLower(nm)); d < bestD {
			best, bestD = nm, d
		}
	}
	if bestD <= max(2, len(s)/4) {
		return best
	}
	return ""
}

// distance is the Levenshtein distance.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
