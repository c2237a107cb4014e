package deploy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// dfInstr is one Dockerfile instruction, continuation lines joined.
type dfInstr struct {
	Cmd   string   // upper case: FROM, RUN, COPY, ...
	Flags []string // leading --name[=value] options
	Args  string   // the rest of the line
	Line  int
}

// dfStage is one FROM and the instructions after it.
type dfStage struct {
	Image, Name, Platform string
	From                  dfInstr
	Instrs                []dfInstr
}

// parseDockerfile splits a Dockerfile into instructions: comments and
// blank lines dropped, backslash continuations joined (comment lines inside
// a continuation are skipped, as BuildKit does).
func parseDockerfile(src string) ([]dfInstr, error) {
	var out []dfInstr
	sc := bufio.NewScanner(strings.NewReader(src))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line, start := 0, 0
	var cur strings.Builder
	for sc.Scan() {
		line++
		text := sc.Text()
		trimmed := strings.TrimSpace(text)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if cur.Len() == 0 {
			start = line
		}
		if body, ok := strings.CutSuffix(strings.TrimRight(text, " \t"), "\\"); ok {
			cur.WriteString(body)
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(text)
		in, err := parseDfInstr(cur.String(), start)
		if err != nil {
			return nil, err
		}
		if in.Cmd != "" {
			out = append(out, in)
		}
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur.Len() > 0 {
		return nil, fmt.Errorf("line %d: continuation at end of file", start)
	}
	return out, nil
}

var dfCmdRE = regexp.MustCompile(`^[A-Za-z]+$`)

func parseDfInstr(s string, line int) (dfInstr, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return dfInstr{}, nil
	}
	if !dfCmdRE.MatchString(fields[0]) {
		return dfInstr{}, fmt.Errorf("line %d: %q is not an instruction", line, fields[0])
	}
	in := dfInstr{Cmd: strings.ToUpper(fields[0]), Line: line}
	rest := fields[1:]
	for len(rest) > 0 && strings.HasPrefix(rest[0], "--") {
		in.Flags = append(in.Flags, rest[0])
		rest = rest[1:]
	}
	in.Args = strings.Join(rest, " ")
	return in, nil
}

// flag returns the value of --name=value among the instruction's flags.
func (in dfInstr) flag(name string) (string, bool) {
	for _, f := range in.Flags {
		if v, ok := strings.CutPrefix(f, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// dfStages groups instructions by stage, resolving ${ARG} in FROM lines
// from the ARG defaults declared before the first FROM.
func dfStages(instrs []dfInstr) (stages []*dfStage, args map[string]string, err error) {
	args = map[string]string{}
	for _, in := range instrs {
		if in.Cmd == "FROM" {
			f := strings.Fields(in.Args)
			st := &dfStage{From: in}
			st.Platform, _ = in.flag("platform")
			switch {
			case len(f) == 1:
			case len(f) == 3 && strings.EqualFold(f[1], "AS"):
				st.Name = f[2]
			default:
				return nil, nil, fmt.Errorf("line %d: FROM %s", in.Line, in.Args)
			}
			st.Image = expandArgs(f[0], args)
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			if in.Cmd != "ARG" {
				return nil, nil, fmt.Errorf("line %d: %s before the first FROM", in.Line, in.Cmd)
			}
			name, def, _ := strings.Cut(in.Args, "=")
			args[name] = def
			continue
		}
		st := stages[len(stages)-1]
		st.Instrs = append(st.Instrs, in)
	}
	if len(stages) == 0 {
		return nil, nil, fmt.Errorf("no FROM")
	}
	return stages, args, nil
}

var dfVarRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// expandArgs substitutes $NAME and ${NAME} from vars (unknown: empty).
func expandArgs(s string, vars map[string]string) string {
	return dfVarRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := dfVarRE.FindStringSubmatch(m)
		return vars[sub[1]+sub[2]]
	})
}

func TestParseDockerfile(t *testing.T) {
	src := "# syntax=docker/dockerfile:1\nARG V=1.2\n\nFROM --platform=$BUILDPLATFORM img:${V} AS b\nRUN a \\\n  # comment inside\n  b\nCOPY --from=b --chown=1:1 /x /y\nFROM scratch\nUSER 1:1\n"
	instrs, err := parseDockerfile(src)
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, in := range instrs {
		cmds = append(cmds, in.Cmd)
	}
	if want := []string{"ARG", "FROM", "RUN", "COPY", "FROM", "USER"}; !slices.Equal(cmds, want) {
		t.Fatalf("instructions %v, want %v", cmds, want)
	}
	if instrs[2].Args != "a b" {
		t.Errorf("RUN args %q", instrs[2].Args)
	}
	if v, _ := instrs[3].flag("from"); v != "b" || instrs[3].Args != "/x /y" {
		t.Errorf("COPY flags %v args %q", instrs[3].Flags, instrs[3].Args)
	}
	stages, _, err := dfStages(instrs)
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) != 2 || stages[0].Image != "img:1.2" || stages[0].Name != "b" || stages[0].Platform != "$BUILDPLATFORM" || stages[1].Image != "scratch" {
		t.Errorf("stages %+v %+v", *stages[0], *stages[1])
	}
	for _, bad := range []string{"RUN x\nFROM a", "FROM a b c d", "FROM a\nRUN x \\", "FROM a\n1RUN"} {
		instrs, err := parseDockerfile(bad)
		if err == nil {
			_, _, err = dfStages(instrs)
		}
		if err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func FuzzParseDockerfile(f *testing.F) {
	f.Add("FROM a:1 AS b\nRUN x \\\n y\nFROM scratch\n")
	f.Add("ARG A=${B}\nFROM $A\n")
	f.Fuzz(func(t *testing.T, src string) {
		instrs, err := parseDockerfile(src)
		if err != nil {
			return
		}
		for _, in := range instrs {
			if in.Cmd == "" || in.Cmd != strings.ToUpper(in.Cmd) || in.Line < 1 {
				t.Fatalf("instruction %+v", in)
			}
		}
		stages, _, err := dfStages(instrs)
		if err == nil && len(stages) == 0 {
			t.Fatal("no stages and no error")
		}
	})
}

func loadDockerfile(t *testing.T) []*dfStage {
	t.Helper()
	instrs, err := parseDockerfile(string(readRepoFile(t, "Dockerfile")))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	stages, _, err := dfStages(instrs)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	return stages
}

// goModVersion returns the go directive of go.mod.
func goModVersion(t *testing.T) string {
	t.Helper()
	for _, line := range strings.Split(string(readRepoFile(t, "go.mod")), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "go "); ok {
			return v
		}
	}
	t.Fatal("go.mod has no go directive")
	return ""
}

// versionLess compares dotted numeric versions ("1.26" < "1.26.8").
func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(pa), len(pb)); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

func TestDockerfile(t *testing.T) {
	stages := loadDockerfile(t)
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a multi-stage build", len(stages))
	}
	names := map[string]bool{}
	for i, st := range stages {
		where := fmt.Sprintf("stage %d (FROM %s, line %d)", i, st.Image, st.From.Line)
		switch {
		case st.Image == "scratch":
		case names[st.Image]:
		default:
			if why := imagePinned(st.Image); why != "" {
				t.Errorf("%s: base image not pinned: %s", where, why)
			}
		}
		for _, in := range st.Instrs {
			if in.Cmd == "ADD" {
				for _, src := range strings.Fields(in.Args) {
					if strings.Contains(src, "://") || strings.HasPrefix(src, "git@") {
						t.Errorf("%s line %d: ADD of a URL (%s): download in a RUN with a checksum, or COPY", where, in.Line, src)
					}
				}
			}
			if in.Cmd == "COPY" {
				if from, ok := in.flag("from"); ok && !names[from] {
					t.Errorf("%s line %d: COPY --from=%s names no earlier stage", where, in.Line, from)
				}
			}
			if in.Cmd == "MAINTAINER" {
				t.Errorf("%s line %d: MAINTAINER is deprecated; use a LABEL", where, in.Line)
			}
		}
		if st.Name != "" {
			names[st.Name] = true
		}
	}

	builder := stages[0]
	if builder.Name != "builder" {
		t.Errorf("first stage is %q, want it named builder", builder.Name)
	}
	repo, tag, _ := strings.Cut(builder.Image, ":")
	if repo != "golang" {
		t.Errorf("builder image %q, want golang:<version>", builder.Image)
	}
	if goVer := goModVersion(t); versionLess(tag, goVer) {
		t.Errorf("builder Go %s is older than go.mod's go %s", tag, goVer)
	}
	if builder.Platform != "$BUILDPLATFORM" {
		t.Errorf("builder: want FROM --platform=$BUILDPLATFORM (cross-compile natively instead of emulating)")
	}
	var build, download *dfInstr
	cgo := false
	for i, in := range builder.Instrs {
		if (in.Cmd == "ENV" || in.Cmd == "RUN") && strings.Contains(in.Args, "CGO_ENABLED=0") {
			cgo = true
		}
		if in.Cmd == "RUN" && strings.Contains(in.Args, "go build") {
			build = &builder.Instrs[i]
		}
		if in.Cmd == "RUN" && strings.Contains(in.Args, "go mod download") {
			download = &builder.Instrs[i]
		}
	}
	if !cgo {
		t.Error("builder: CGO_ENABLED=0 is not set (the final image has no libc)")
	}
	if build == nil {
		t.Fatal("builder: no RUN go build")
	}
	for _, want := range []string{"-trimpath", `-ldflags "-s -w"`, "./cmd/streamprofile"} {
		if !strings.Contains(build.Args, want) {
			t.Errorf("builder line %d: go build lacks %s", build.Line, want)
		}
	}
	for _, c := range []struct {
		in      *dfInstr
		targets []string
	}{{build, []string{"/go/pkg/mod", "/root/.cache/go-build"}}, {download, []string{"/go/pkg/mod"}}} {
		if c.in == nil {
			t.Error("builder: no RUN go mod download (a layer that caches modules across source edits)")
			continue
		}
		for _, target := range c.targets {
			if !slices.Contains(c.in.Flags, "--mount=type=cache,target="+target) {
				t.Errorf("builder line %d: no --mount=type=cache,target=%s", c.in.Line, target)
			}
		}
	}

	final := stages[len(stages)-1]
	var user, entrypoint string
	var copyFromBuilder bool
	var expose []string
	for _, in := range final.Instrs {
		switch in.Cmd {
		case "USER":
			user = in.Args
		case "ENTRYPOINT":
			entrypoint = in.Args
		case "COPY":
			if from, _ := in.flag("from"); from == builder.Name {
				copyFromBuilder = true
			}
		case "EXPOSE":
			expose = append(expose, strings.Fields(in.Args)...)
		case "RUN":
			if final.Image == "scratch" {
				t.Errorf("final stage line %d: RUN in a scratch image (there is no shell)", in.Line)
			}
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("final stage: USER %q, want a numeric non-root uid (runAsNonRoot can only verify numeric users)", user)
	}
	var ep []string
	if err := json.Unmarshal([]byte(entrypoint), &ep); err != nil || !slices.Equal(ep, []string{"/streamprofile"}) {
		t.Errorf("final stage: ENTRYPOINT %s, want exec form [\"/streamprofile\"]", entrypoint)
	}
	if !copyFromBuilder {
		t.Errorf("final stage: no COPY --from=%s", builder.Name)
	}
	for _, p := range []string{"8080", "9090"} {
		if !slices.Contains(expose, p) {
			t.Errorf("final stage: EXPOSE lacks %s", p)
		}
	}
	// The k8s manifests and compose run as this user.
	for name, d := range loadK8s(t).Deployments {
		if sc := d.Spec.Template.Spec.SecurityContext; sc != nil && sc.RunAsUser != nil && strconv.FormatInt(*sc.RunAsUser, 10) != uid {
			t.Errorf("deployment %s: runAsUser %d differs from the image's USER %s", name, *sc.RunAsUser, uid)
		}
	}
}

// dockerignore is a parsed .dockerignore: patterns in order, later ones
// win, "!" re-includes.
type dockerignore []struct {
	re      *regexp.Regexp
	exclude bool
}

// parseDockerignore follows the rules of Docker's pattern matcher: paths
// are relative to the context root, "**" matches any number of directories,
// "*" and "?" do not cross "/", and a pattern that matches a directory
// excludes everything below it.
func parseDockerignore(src string) (dockerignore, error) {
	var d dockerignore
	for _, line := range strings.Split(src, "\n") {
		p := strings.TrimSpace(line)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		exclude := true
		if rest, ok := strings.CutPrefix(p, "!"); ok {
			exclude, p = false, strings.TrimSpace(rest)
		}
		if !utf8.ValidString(p) {
			return nil, fmt.Errorf("pattern %q is not UTF-8", line)
		}
		p = strings.TrimPrefix(path.Clean("/"+p), "/")
		if p == "" {
			return nil, fmt.Errorf("pattern %q matches the whole context", line)
		}
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(p); i++ {
			switch c := p[i]; {
			case strings.HasPrefix(p[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(p[i:], "**"):
				re.WriteString(".*")
				i++
			case c == '*':
				re.WriteString("[^/]*")
			case c == '?':
				re.WriteString("[^/]")
			case c == '[':
				j := strings.IndexByte(p[i:], ']')
				if j < 0 {
					return nil, fmt.Errorf("pattern %q: unterminated [", line)
				}
				re.WriteString(p[i : i+j+1])
				i += j
			case c == '\\' && i+1 < len(p):
				_, size := utf8.DecodeRuneInString(p[i+1:])
				re.WriteString(regexp.QuoteMeta(p[i+1 : i+1+size]))
				i += size
			default:
				_, size := utf8.DecodeRuneInString(p[i:])
				re.WriteString(regexp.QuoteMeta(p[i : i+size]))
				i += size - 1
			}
		}
		re.WriteString("(/.*)?$")
		compiled, err := regexp.Compile(re.String())
		if err != nil {
			return nil, fmt.Errorf("pattern %q: %v", line, err)
		}
		d = append(d, struct {
			re      *regexp.Regexp
			exclude bool
		}{compiled, exclude})
	}
	return d, nil
}

// ignored reports whether the context path rel is excluded.
func (d dockerignore) ignored(rel string) bool {
	out := false
	for _, p := range d {
		if p.re.MatchString(rel) {
			out = p.exclude
		}
	}
	return out
}

func TestDockerignoreMatcher(t *testing.T) {
	d, err := parseDockerignore("# c\n.git\n**/*_test.go\n**/testdata\ndeploy\n/out\n*.md\n!README.md\nbin/?.x\n")
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]bool{
		".git":                       true,
		".git/config":                true,
		".gitignore":                 false,
		"a_test.go":                  true,
		"stream/deep/x_test.go":      true,
		"stream/x.go":                false,
		"data/testdata/f":            true,
		"testdata":                   true,
		"deploy/k8s/serve.yaml":      true,
		"deployment.go":              false,
		"out/x":                      true,
		"cmd/out":                    false,
		"NOTES.md":                   true,
		"README.md":                  false,
		"data/README.md":             false, // *.md does not cross directories
		"bin/a.x":                    true,
		"bin/ab.x":                   false,
		"cmd/streamprofile/main.go":  false,
		"features/featurestest/a.go": false,
	}
	for p, want := range tests {
		if got := d.ignored(p); got != want {
			t.Errorf("ignored(%q) = %v, want %v", p, got, want)
		}
	}
	for _, bad := range []string{"/", "[abc", "!/"} {
		if _, err := parseDockerignore(bad); err == nil {
			t.Errorf("parseDockerignore(%q): no error", bad)
		}
	}
}

func FuzzDockerignore(f *testing.F) {
	f.Add("**/*_test.go\n!keep_test.go\n", "a/keep_test.go")
	f.Add("[a-", "x")
	f.Fuzz(func(t *testing.T, src, p string) {
		d, err := parseDockerignore(src)
		if err != nil {
			return
		}
		d.ignored(p)
		// A literal pattern (no metacharacters) excludes itself.
		lit := strings.TrimPrefix(path.Clean("/"+strings.TrimSpace(src)), "/")
		if !strings.ContainsAny(src, "*?[\\!#\n\r") && lit != "" && strings.TrimSpace(src) != "" {
			if !d.ignored(lit) {
				t.Fatalf("pattern %q does not exclude %q", src, lit)
			}
		}
	})
}

// TestDockerignoreKeepsBuildInputs asks the go command which files the
// binary is built from (Go sources and embedded files of every package of
// this module it imports) and checks that .dockerignore excludes none of
// them, and that it excludes what must not reach the build context.
func TestDockerignoreKeepsBuildInputs(t *testing.T) {
	d, err := parseDockerignore(string(readRepoFile(t, ".dockerignore")))
	if err != nil {
		t.Fatal(err)
	}
	root := repoRoot(t)
	cmd := exec.Command("go", "list", "-deps", "-json=Dir,GoFiles,EmbedFiles,Module", "./cmd/streamprofile")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	inputs := []string{"go.mod", "go.sum"}
	for dec.More() {
		var p struct {
			Dir        string
			GoFiles    []string
			EmbedFiles []string
			Module     *struct{ Main bool }
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		if p.Module == nil || !p.Module.Main {
			continue
		}
		rel, err := filepath.Rel(root, p.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range append(p.GoFiles, p.EmbedFiles...) {
			inputs = append(inputs, filepath.ToSlash(filepath.Join(rel, f)))
		}
	}
	if len(inputs) < 10 {
		t.Fatalf("go list found only %v", inputs)
	}
	for _, f := range inputs {
		if d.ignored(f) {
			t.Errorf(".dockerignore excludes %s, which the build needs", f)
		}
	}
	for _, f := range []string{".git/HEAD", ".testenv/run/env", "deploy/k8s/secret.yaml", "deploy/config/dev/pseudonym.key", "stream/event_test.go"} {
		if !d.ignored(f) {
			t.Errorf(".dockerignore does not exclude %s", f)
		}
	}
}
