package apim

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Bounds on what a policy document may hold.
const (
	// MaxDocumentBytes bounds a policy file.
	MaxDocumentBytes = 1 << 20
	maxDepth         = 16
	maxElements      = 10000
)

// node is one XML element with the line its start tag begins on.
type node struct {
	name     string
	line     int
	attrs    []xml.Attr
	children []*node
	text     strings.Builder
}

func (n *node) attr(name string) (string, bool) {
	for _, a := range n.attrs {
		if a.Name.Space == "" && a.Name.Local == name {
			return a.Value, true
		}
	}
	return "", false
}

// parseTree reads the document into a tree, refusing what encoding/xml
// would otherwise let through: namespaces, DOCTYPE, several roots, text
// outside the root.
func parseTree(file string, data []byte) (*node, error) {
	if len(data) > MaxDocumentBytes {
		return nil, fmt.Errorf("%s: policy document is %d bytes, over the %d-byte limit", file, len(data), MaxDocumentBytes)
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	var root *node
	var stack []*node
	count := 0
	for {
		line, _ := d.InputPos()
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return nil, fmt.Errorf("%s:%d: malformed XML: %s", file, se.Line, se.Msg)
			}
			return nil, fmt.Errorf("%s:%d: malformed XML: %v", file, line, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Space != "" {
				return nil, fmt.Errorf("%s:%d: element <%s:%s>: XML namespaces are not used in policy documents", file, line, t.Name.Space, t.Name.Local)
			}
			count++
			if count > maxElements {
				return nil, fmt.Errorf("%s:%d: more than %d elements", file, line, maxElements)
			}
			if len(stack) >= maxDepth {
				return nil, fmt.Errorf("%s:%d: elements nested more than %d deep", file, line, maxDepth)
			}
			n := &node{name: t.Name.Local, line: line, attrs: t.Attr}
			if len(stack) == 0 {
				if root != nil {
					return nil, fmt.Errorf("%s:%d: a second root element <%s>; a policy document has one <policies>", file, line, n.name)
				}
				root = n
			} else {
				p := stack[len(stack)-1]
				p.children = append(p.children, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 0 {
				if len(bytes.TrimSpace(t)) > 0 {
					return nil, fmt.Errorf("%s:%d: text outside the <policies> element", file, line)
				}
				continue
			}
			stack[len(stack)-1].text.Write(t)
		case xml.Directive:
			return nil, fmt.Errorf("%s:%d: XML directives (<!DOCTYPE ...>) are not allowed in policy documents", file, line)
		case xml.Comment, xml.ProcInst:
		}
	}
	if root == nil {
		return nil, fmt.Errorf("%s: empty document: want a <policies> element", file)
	}
	return root, nil
}
