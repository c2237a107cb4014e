package deploy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// deployFlag is a flag that the deployment files pass to a subcommand.
type deployFlag struct {
	name string
}

// deployFlags is the single list of the flags that docker-compose.yml and
// deploy/k8s pass to each subcommand of streamprofile, as --name=value on
// the command line or as STREAMPROFILE_<NAME> in the environment.
//
// --admin-addr (the /metrics, /healthz, /readyz listener) is accepted by
// every role.
//
// TestDeployFlagsInTable keeps this table and the deployment files in
// step; TestDeployFlagsAcceptedByBinary checks the table against the
// binary's `<subcommand> -h`. A subcommand that does not exist yet is
// skipped, with a message naming it, and is checked as soon as it lands.
var deployFlags = map[string][]deployFlag{
	"ingest": {
		{name: "brokers"}, {name: "redis"}, {name: "log-format"}, {name: "admin-addr"},
		{name: "group"}, {name: "topic"}, {name: "create-topics"}, {name: "partitions"},
		{name: "pseudonym-key-file"},
	},
	"train": {
		{name: "brokers"}, {name: "redis"}, {name: "log-format"}, {name: "admin-addr"},
		{name: "group"},
	},
	"score": {
		{name: "brokers"}, {name: "redis"}, {name: "log-format"}, {name: "admin-addr"},
		{name: "segments"},
	},
	"serve": {
		{name: "brokers"}, {name: "redis"}, {name: "log-format"}, {name: "admin-addr"},
		{name: "addr"}, {name: "tokens-file"}, {name: "pseudonym-key-file"}, {name: "clock"}, {name: "group"},
	},
	"replay": {
		{name: "brokers"}, {name: "topic"}, {name: "speed"},
	},
}

// otherEnv are the environment variables the roles get that are not
// STREAMPROFILE_* flags: standard OpenTelemetry SDK variables and Go
// runtime settings.
var otherEnv = []string{
	"OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_TRACES_EXPORTER",
	"GOMEMLIMIT",
}

// flagUse is one place where a deployment file sets a flag.
type flagUse struct {
	where      string // human-readable origin
	unit       string // the service or deployment, for grouping
	subcommand string
	flag       string
	value      string
	env        bool // set through STREAMPROFILE_<FLAG>
}

var argFlagRE = regexp.MustCompile(`^--([a-z0-9][a-z0-9-]*)(=(.*))?$`)

// argUses parses the arguments after the subcommand. The deployment files
// write every flag as --name=value (or --name for a boolean) so that a
// value can never be mistaken for a flag.
func argUses(where, unit, sub string, args []string) ([]flagUse, error) {
	var out []flagUse
	for _, a := range args {
		m := argFlagRE.FindStringSubmatch(a)
		if m == nil {
			return nil, fmt.Errorf("%s: argument %q: write flags as --name=value", where, a)
		}
		out = append(out, flagUse{where: where + " arg " + a, unit: unit, subcommand: sub, flag: m[1], value: m[3]})
	}
	return out, nil
}

// envUses turns STREAMPROFILE_* variables into flag uses and reports any
// other variable that is not in otherEnv.
func envUses(where, unit, sub string, env map[string]string) ([]flagUse, error) {
	var out []flagUse
	for _, k := range sortedKeys(env) {
		name, ok := strings.CutPrefix(k, "STREAMPROFILE_")
		if !ok {
			if !slices.Contains(otherEnv, k) {
				return nil, fmt.Errorf("%s: environment variable %s is neither STREAMPROFILE_* nor a known OTEL_*/Go variable (typo?)", where, k)
			}
			continue
		}
		flag := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
		out = append(out, flagUse{where: where + " env " + k, unit: unit, subcommand: sub, flag: flag, value: env[k], env: true})
	}
	return out, nil
}

// collectFlagUses gathers every flag set by docker-compose.yml's
// streamprofile services and by the k8s Deployments.
func collectFlagUses(t testing.TB) []flagUse {
	t.Helper()
	var uses []flagUse
	add := func(u []flagUse, err error) {
		if err != nil {
			t.Error(err)
		}
		uses = append(uses, u...)
	}
	c := loadCompose(t)
	for _, name := range sortedKeys(c.Services) {
		s := c.Services[name]
		if !s.isRole() {
			continue
		}
		where, unit := composeFileName+" service "+name, "compose/"+name
		add(argUses(where, unit, s.subcommand(), s.Command[1:]))
		add(envUses(where, unit, s.subcommand(), s.Environment))
	}
	m := loadK8s(t)
	for _, name := range sortedKeys(m.Deployments) {
		for i := range m.Deployments[name].Spec.Template.Spec.Containers {
			ctr := &m.Deployments[name].Spec.Template.Spec.Containers[i]
			if len(ctr.Args) == 0 {
				t.Errorf("deployment %s: no args (want the subcommand first)", name)
				continue
			}
			where, unit := k8sDir+" deployment "+name, "k8s/"+name
			add(argUses(where, unit, ctr.Args[0], ctr.Args[1:]))
			add(envUses(where, unit, ctr.Args[0], m.containerEnv(ctr)))
		}
	}
	return uses
}

// TestDeployFlagsInTable: every flag the files set is in deployFlags, and
// every entry of deployFlags is still used. It needs no binary.
func TestDeployFlagsInTable(t *testing.T) {
	uses := collectFlagUses(t)
	used := map[string]bool{}
	for _, u := range uses {
		flags, ok := deployFlags[u.subcommand]
		if !ok {
			t.Errorf("%s: subcommand %q is not in deployFlags", u.where, u.subcommand)
			continue
		}
		if !slices.ContainsFunc(flags, func(f deployFlag) bool { return f.name == u.flag }) {
			t.Errorf("%s: --%s is not in deployFlags[%q]; add it there (the table is checked against the binary)", u.where, u.flag, u.subcommand)
		}
		used[u.subcommand+" "+u.flag] = true
	}
	for _, sub := range sortedKeys(deployFlags) {
		for _, f := range deployFlags[sub] {
			if !used[sub+" "+f.name] {
				t.Errorf("deployFlags[%q] lists --%s, which no deployment file sets; remove it", sub, f.name)
			}
		}
	}
}

var helpFlagRE = regexp.MustCompile(`(?m)^  -([A-Za-z0-9][A-Za-z0-9_.-]*)`)

// acceptedFlags runs `streamprofile <sub> -h` and returns the flags it
// lists, or ok=false when the subcommand does not exist.
func acceptedFlags(t *testing.T, sub string) (flags []string, ok bool) {
	t.Helper()
	code, out := runBinary(t, nil, sub, "-h")
	if code == 2 && strings.Contains(out, "unknown command") {
		return nil, false
	}
	if code != 0 {
		t.Fatalf("streamprofile %s -h: exit %d\n%s", sub, code, out)
	}
	for _, m := range helpFlagRE.FindAllStringSubmatch(out, -1) {
		flags = append(flags, m[1])
	}
	if len(flags) == 0 {
		t.Fatalf("streamprofile %s -h lists no flags:\n%s", sub, out)
	}
	return flags, true
}

func TestParseHelpFlags(t *testing.T) {
	out := "Usage of ingest:\n  -brokers string\n    \tKafka bootstrap brokers (default \"x\")\n  -create-topics\n    \tcreate missing topics\n  -log.level value\n    \tlevel\n   -indented-too-far\n"
	var got []string
	for _, m := range helpFlagRE.FindAllStringSubmatch(out, -1) {
		got = append(got, m[1])
	}
	if want := []string{"brokers", "create-topics", "log.level"}; !slices.Equal(got, want) {
		t.Errorf("parsed %v, want %v", got, want)
	}
}

// TestDeployFlagsAcceptedByBinary checks deployFlags against the flags each
// subcommand of the binary built from this tree accepts.
func TestDeployFlagsAcceptedByBinary(t *testing.T) {
	for _, sub := range sortedKeys(deployFlags) {
		t.Run(sub, func(t *testing.T) {
			accepted, ok := acceptedFlags(t, sub)
			if !ok {
				t.Skipf("streamprofile has no %q subcommand yet; the flags the deployment passes it (%s) are checked once it exists",
					sub, flagList(deployFlags[sub]))
			}
			for _, f := range deployFlags[sub] {
				t.Run(f.name, func(t *testing.T) {
					if !slices.Contains(accepted, f.name) {
						t.Errorf("streamprofile %s does not accept --%s, which the deployment files set (accepted: %s)", sub, f.name, strings.Join(accepted, ", "))
					}
				})
			}
		})
	}
}

func flagList(fs []deployFlag) string {
	var s []string
	for _, f := range fs {
		s = append(s, "--"+f.name)
	}
	return strings.Join(s, " ")
}

// TestDeployFlagValuesParse runs every deployment unit's command line and
// environment through the binary's flag parsing (with -h appended, so
// nothing starts): a value the flag type rejects (a bad duration, a
// non-numeric partition count) fails here instead of at start-up.
func TestDeployFlagValuesParse(t *testing.T) {
	uses := collectFlagUses(t)
	units := map[string][]flagUse{}
	for _, u := range uses {
		units[u.unit] = append(units[u.unit], u)
	}
	exists := map[string][]string{}
	for _, unit := range sortedKeys(units) {
		t.Run(unit, func(t *testing.T) {
			sub := units[unit][0].subcommand
			accepted, seen := exists[sub]
			if !seen {
				var ok bool
				if accepted, ok = acceptedFlags(t, sub); !ok {
					accepted = []string{}
				}
				exists[sub] = accepted
			}
			if len(accepted) == 0 {
				t.Skipf("streamprofile has no %q subcommand yet", sub)
			}
			args := []string{sub}
			env := []string{}
			var skipped []string
			for _, u := range units[unit] {
				if !slices.Contains(accepted, u.flag) {
					skipped = append(skipped, "--"+u.flag) // reported by TestDeployFlagsAcceptedByBinary
					continue
				}
				if u.env {
					env = append(env, envName(u.flag)+"="+u.value)
				} else if u.value != "" {
					args = append(args, "--"+u.flag+"="+u.value)
				} else {
					args = append(args, "--"+u.flag)
				}
			}
			args = append(args, "-h")
			if code, out := runBinary(t, env, args...); code != 0 {
				t.Errorf("streamprofile %s with env %q: exit %d\n%s", strings.Join(args, " "), env, code, out)
			}
			if len(skipped) > 0 {
				t.Logf("not accepted yet, left out: %s", strings.Join(skipped, " "))
			}
		})
	}
}

func TestArgUses(t *testing.T) {
	got, err := argUses("w", "u", "ingest", []string{"--group=g", "--create-topics", "--addr=:8080", "--x=a=b"})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ flag, value string }{{"group", "g"}, {"create-topics", ""}, {"addr", ":8080"}, {"x", "a=b"}}
	for i, w := range want {
		if got[i].flag != w.flag || got[i].value != w.value {
			t.Errorf("use %d = %s=%q, want %s=%q", i, got[i].flag, got[i].value, w.flag, w.value)
		}
	}
	for _, bad := range []string{"-group=g", "g", "--Group=g", "--=x"} {
		if _, err := argUses("w", "u", "ingest", []string{bad}); err == nil {
			t.Errorf("argUses(%q): no error", bad)
		}
	}
	if _, err := envUses("w", "u", "ingest", map[string]string{"OTEL_EXPORTER_OTLP_ENDPIONT": "x"}); err == nil {
		t.Error("envUses accepted a misspelt OTEL variable")
	}
	uses, err := envUses("w", "u", "serve", map[string]string{"STREAMPROFILE_PSEUDONYM_KEY_FILE": "/k", "GOMEMLIMIT": "1MiB"})
	if err != nil || len(uses) != 1 || uses[0].flag != "pseudonym-key-file" || !uses[0].env {
		t.Errorf("envUses = %+v, %v", uses, err)
	}
}
