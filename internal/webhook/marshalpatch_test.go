package webhook

import (
	"bytes"
	"encoding/json"
	"testing"
)

// marshalPatch must give exactly json.Marshal's bytes: the patch goes to the
// API server as-is.
func TestMarshalPatchMatchesJSONMarshal(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  []PatchOp
	}{
		{"nil", nil},
		{"empty", []PatchOp{}},
		{"remove", []PatchOp{{Op: "remove", Path: "/spec/volumes/0"}}},
		{"null value", []PatchOp{{Op: "add", Path: "/a", Value: nil}}},
		{"html and separators", []PatchOp{{Op: "add", Path: "/a~1<b>", Value: map[string]any{"x&y": "<script>\u2028\u2029", "n": json.Number("12.50"), "z": []any{1.5, true, nil}}}}},
		{"several", []PatchOp{
			{Op: "add", Path: "/spec/containers/0", Value: map[string]any{"name": "sidecar", "env": []any{map[string]any{"name": "A", "value": "b"}}}},
			{Op: "replace", Path: "/spec/containers/1/image", Value: "img:1"},
			{Op: "remove", Path: "/spec/initContainers"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := json.Marshal(tc.ops)
			if err != nil {
				t.Fatal(err)
			}
			got, err := marshalPatch(tc.ops)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("marshalPatch:\n got %s\nwant %s", got, want)
			}
		})
	}
}
