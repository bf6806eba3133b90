package apply

import (
	"bytes"
	"os"
	"testing"
)

// FuzzParse: the parser never panics, and whatever it accepts renders back
// to a document it accepts again, unchanged.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("testdata/directory.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("tenants: []\n"))
	f.Add([]byte(`{"tenants":[{"id":"72f988bf-86f1-41af-91ab-2d7cd011db47","displayName":"x"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := Parse(bytes.NewReader(data))
		if err != nil {
			return
		}
		out, err := doc.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed document: %v", err)
		}
		doc2, err := Parse(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("rendered document does not parse: %v\n%s", err, out)
		}
		out2, _ := doc2.Marshal()
		if !bytes.Equal(out, out2) {
			t.Fatalf("render is not stable:\n%s\n---\n%s", out, out2)
		}
	})
}
