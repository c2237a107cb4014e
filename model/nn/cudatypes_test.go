package nn

import (
	"bufio"
	"bytes"
	"fmt"
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCUDABuildTypeChecks type-checks this package as `go build -tags cuda`
// would compile it, with cgo faked (go/types' FakeImportC), so that
// device_cuda.go is checked against gorgonia's CUDA-build API without the
// CUDA toolkit. Errors inside the dependencies are the fake cgo's doing and
// are ignored; errors in this package fail the test. It cannot check that
// the CUDA build links or runs.
func TestCUDABuildTypeChecks(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("type-checks all dependencies from source: slow under -short and -race")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not available")
	}
	cmd := exec.Command(goCmd, "list", "-tags", "cuda", "-deps", "-f", "{{.ImportPath}} {{.Dir}}", ".")
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	c := &cudaChecker{fset: token.NewFileSet(), dirs: map[string]string{}, pkgs: map[string]*types.Package{}, ctxt: build.Default}
	c.ctxt.BuildTags = []string{"cuda"}
	c.ctxt.CgoEnabled = true
	// A custom OpenFile keeps go/build from resolving imports itself; the
	// directories come from go list.
	c.ctxt.OpenFile = func(p string) (io.ReadCloser, error) { return os.Open(p) }
	var self string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		path, dir, ok := strings.Cut(sc.Text(), " ")
		if ok {
			c.dirs[path], self = dir, path
		}
	}
	files, err := c.load(self, true)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(files, "device_cuda.go") || slices.Contains(files, "device.go") {
		t.Fatalf("cuda build files: %v", files)
	}
	for _, e := range c.selfErrs {
		t.Error(e)
	}
}

type cudaChecker struct {
	fset     *token.FileSet
	ctxt     build.Context
	dirs     map[string]string
	pkgs     map[string]*types.Package
	selfErrs []error
}

func (c *cudaChecker) Import(path string) (*types.Package, error) {
	if path == "unsafe" {
		return types.Unsafe, nil
	}
	if p, ok := c.pkgs[path]; ok {
		return p, nil
	}
	if _, err := c.load(path, false); err != nil {
		return nil, err
	}
	return c.pkgs[path], nil
}

func (c *cudaChecker) load(path string, self bool) ([]string, error) {
	dir, ok := c.dirs[path]
	if !ok {
		return nil, fmt.Errorf("package %s not listed", path)
	}
	bp, err := c.ctxt.ImportDir(dir, 0)
	if err != nil {
		return nil, err
	}
	names := append(append([]string(nil), bp.GoFiles...), bp.CgoFiles...)
	var files []*ast.File
	for _, name := range names {
		f, err := parser.ParseFile(c.fset, filepath.Join(dir, name), nil, 0)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	conf := types.Config{Importer: c, FakeImportC: true, IgnoreFuncBodies: !self, Error: func(err error) {
		if self {
			c.selfErrs = append(c.selfErrs, err)
		}
	}}
	p, _ := conf.Check(path, c.fset, files, nil)
	c.pkgs[path] = p
	return names, nil
}
