package webhook

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// PatchOp is one RFC 6902 JSON Patch operation.
type PatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// MarshalJSON writes "value" for every operation but remove, even when the
// value is JSON null.
func (op PatchOp) MarshalJSON() ([]byte, error) {
	if op.Op == "remove" {
		return json.Marshal(struct {
			Op   string `json:"op"`
			Path string `json:"path"`
		}{op.Op, op.Path})
	}
	return json.Marshal(struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value any    `json:"value"`
	}{op.Op, op.Path, op.Value})
}

// marshalPatch is json.Marshal(ops) without its second pass: json.Marshal
// re-scans and compacts every Marshaler's output, and PatchOp.MarshalJSON's
// output (itself from json.Marshal) is already compact and HTML-escaped, so
// joining the operations gives the same bytes.
func marshalPatch(ops []PatchOp) ([]byte, error) {
	if ops == nil {
		return []byte("null"), nil
	}
	out := make([]byte, 0, 512)
	out = append(out, '[')
	for i, op := range ops {
		b, err := op.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("json: error calling MarshalJSON for type webhook.PatchOp: %w", err)
		}
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, b...)
	}
	return append(out, ']'), nil
}

// CreatePatch returns the JSON Patch that turns the JSON document from into
// to. Both are decoded generically; objects are diffed key by key (sorted, so
// the patch is deterministic), arrays element by element, with elements
// inserted at the front or appended at the end recognised as such (the
// sidecar is prepended, the volume appended). Anything else is replaced
// whole, which is always correct.
func CreatePatch(from, to []byte) ([]PatchOp, error) {
	return createPatchAt("", from, to)
}

// createPatchAt is CreatePatch for documents found at path in a larger one;
// a JSON null (or empty) "from" means the member is absent, so it is added.
func createPatchAt(path string, from, to []byte) ([]PatchOp, error) {
	var a, b any
	if err := json.Unmarshal(from, &a); err != nil {
		return nil, fmt.Errorf("decode original object: %w", err)
	}
	if err := json.Unmarshal(to, &b); err != nil {
		return nil, fmt.Errorf("decode mutated object: %w", err)
	}
	var ops []PatchOp
	if a == nil && path != "" {
		if b != nil {
			ops = append(ops, PatchOp{Op: "add", Path: path, Value: b})
		}
		return ops, nil
	}
	diff(&ops, path, a, b)
	return ops, nil
}

func escape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func diff(ops *[]PatchOp, path string, a, b any) {
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			*ops = append(*ops, PatchOp{Op: "replace", Path: path, Value: b})
			return
		}
		keys := make([]string, 0, len(av)+len(bv))
		for k := range av {
			keys = append(keys, k)
		}
		for k := range bv {
			if _, ok := av[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := path + "/" + escape(k)
			x, inA := av[k]
			y, inB := bv[k]
			switch {
			case inA && !inB:
				*ops = append(*ops, PatchOp{Op: "remove", Path: p})
			case !inA && inB:
				*ops = append(*ops, PatchOp{Op: "add", Path: p, Value: y})
			default:
				diff(ops, p, x, y)
			}
		}
	case []any:
		bv, ok := b.([]any)
		if !ok {
			*ops = append(*ops, PatchOp{Op: "replace", Path: path, Value: b})
			return
		}
		diffArray(ops, path, av, bv)
	default:
		if !reflect.DeepEqual(a, b) {
			*ops = append(*ops, PatchOp{Op: "replace", Path: path, Value: b})
		}
	}
}

func diffArray(ops *[]PatchOp, path string, a, b []any) {
	if len(b) < len(a) {
		*ops = append(*ops, PatchOp{Op: "replace", Path: path, Value: b})
		return
	}
	extra := len(b) - len(a)
	if extra == 0 {
		for i := range a {
			diff(ops, path+"/"+strconv.Itoa(i), a[i], b[i])
		}
		return
	}
	// Two candidate alignments: b = a' + new (append) or b = new + a'
	// (prepend). Take the one with the smaller patch.
	var appendOps, prependOps []PatchOp
	for i := range a {
		diff(&appendOps, path+"/"+strconv.Itoa(i), a[i], b[i])
	}
	for i := len(a); i < len(b); i++ {
		appendOps = append(appendOps, PatchOp{Op: "add", Path: path + "/-", Value: b[i]})
	}
	for i := range a {
		diff(&prependOps, path+"/"+strconv.Itoa(i), a[i], b[extra+i])
	}
	for i := 0; i < extra; i++ {
		prependOps = append(prependOps, PatchOp{Op: "add", Path: path + "/" + strconv.Itoa(i), Value: b[i]})
	}
	best := appendOps
	if patchSize(prependOps) < patchSize(appendOps) {
		best = prependOps
	}
	if patchSize(best) > patchSize([]PatchOp{{Op: "replace", Path: path, Value: b}}) {
		best = []PatchOp{{Op: "replace", Path: path, Value: b}}
	}
	*ops = append(*ops, best...)
}

// patchSize weighs a patch by its operations and the size of their values.
func patchSize(ops []PatchOp) int {
	n := 0
	for _, op := range ops {
		n += 1 + valueSize(op.Value)
	}
	return n
}

func valueSize(v any) int {
	switch x := v.(type) {
	case map[string]any:
		n := 1
		for _, e := range x {
			n += 1 + valueSize(e)
		}
		return n
	case []any:
		n := 1
		for _, e := range x {
			n += valueSize(e)
		}
		return n
	default:
		return 1
	}
}
