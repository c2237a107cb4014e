package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"
)

// binDir holds the streamprofile binary built by streamprofileBinary.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "deploy-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// repoRoot is the repository root: the parent of this package's directory
// (go test runs in the package directory).
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root %s has no go.mod: %v", root, err)
	}
	return root
}

// repoPath joins a slash-separated repository-relative path to the root.
func repoPath(t testing.TB, rel string) string {
	return filepath.Join(repoRoot(t), filepath.FromSlash(rel))
}

func readRepoFile(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(repoPath(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeStrict decodes one YAML document into v, rejecting keys that v's
// type does not model: a misspelt key is an error, not a silently ignored
// setting.
func decodeStrict(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("more than one YAML document")
	}
	return nil
}

// readYAMLStrict decodes the repository file rel into v with decodeStrict.
func readYAMLStrict(t testing.TB, rel string, v any) {
	t.Helper()
	if err := decodeStrict(readRepoFile(t, rel), v); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
}

// yamlDocs splits a multi-document YAML file into its documents, each
// re-encoded so that it can be decoded strictly into a kind-specific type.
func yamlDocs(data []byte) ([][]byte, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs [][]byte
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(n.Content) == 0 || (n.Content[0].Kind == yaml.ScalarNode && n.Content[0].Tag == "!!null") {
			continue // empty document
		}
		b, err := yaml.Marshal(&n)
		if err != nil {
			return nil, err
		}
		docs = append(docs, b)
	}
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// streamprofileBinary builds ./cmd/streamprofile once per test binary and
// returns its path.
func streamprofileBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		out := filepath.Join(binDir, "streamprofile")
		cmd := exec.Command("go", "build", "-o", out, "./cmd/streamprofile")
		cmd.Dir = repoRoot(t)
		msg, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/streamprofile: %v\n%s", err, msg)
			return
		}
		buildPath = out
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// runBinary runs the streamprofile binary with args and exactly the
// environment env (nothing inherited), and returns its exit code and
// combined output.
func runBinary(t testing.TB, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(streamprofileBinary(t), args...)
	cmd.Env = env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("streamprofile %s: %v", strings.Join(args, " "), err)
	return 0, ""
}
