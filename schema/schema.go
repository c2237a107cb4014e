package schema

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"slices"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// ClickstreamV1 is the file name of the schema of a schema-1 clickstream
// event.
const ClickstreamV1 = "clickstream-v1.schema.json"

// baseURL is the URL under which the embedded schemas are registered with
// the compiler; relative $refs between them resolve against it.
const baseURL = "embed:///schema/"

//go:embed *.schema.json
var files embed.FS

// Names returns the file names of the embedded schemas in lexical order.
func Names() []string {
	names, err := fs.Glob(files, "*.schema.json")
	if err != nil { // the pattern is valid
		return nil
	}
	slices.Sort(names)
	return names
}

// Source returns the text of the embedded schema name, e.g. to serve it.
func Source(name string) ([]byte, error) {
	if !slices.Contains(Names(), name) {
		return nil, fmt.Errorf("schema: %q: %w", name, fs.ErrNotExist)
	}
	return files.ReadFile(name)
}

// Compile compiles the embedded schema name (one of Names) as draft 2020-12
// with "format" asserted (so "date-time" is checked). Every embedded schema
// is available to $ref. The result is safe for concurrent use.
func Compile(name string) (*jsonschema.Schema, error) {
	if !slices.Contains(Names(), name) {
		return nil, fmt.Errorf("schema: %q: %w", name, fs.ErrNotExist)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	for _, n := range Names() {
		b, err := files.ReadFile(n)
		if err != nil {
			return nil, fmt.Errorf("schema: %s: %w", n, err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("schema: %s: %w", n, err)
		}
		if err := c.AddResource(baseURL+n, doc); err != nil {
			return nil, fmt.Errorf("schema: %s: %w", n, err)
		}
	}
	sch, err := c.Compile(baseURL + name)
	if err != nil {
		return nil, fmt.Errorf("schema: compile %s: %w", name, err)
	}
	return sch, nil
}
