package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/streamprofile/streamprofile/internal/testenv"
	"github.com/streamprofile/streamprofile/model/inputs"
	"github.com/streamprofile/streamprofile/model/nn"
	"github.com/streamprofile/streamprofile/model/registry"
)

func testModel(t *testing.T) *nn.Model {
	t.Helper()
	net, err := nn.NewNetwork(nn.Arch{NumericFeatures: []string{"views_total"}, HashBuckets: 8, Hidden: []int{2},
		Heads: []string{inputs.HeadPurchase}})
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	m, err := net.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The model command lists, shows, promotes and rolls back versions of a
// registry that another process (here: the test) writes, in a directory
// and in a Redis Cluster.
func TestModelCommand(t *testing.T) {
	type target struct {
		flags []string
		reg   *registry.Registry
	}
	targets := map[string]func(t *testing.T) target{
		"dir": func(t *testing.T) target {
			dir := t.TempDir()
			b, _ := registry.NewDirBackend(dir)
			reg, _ := registry.New(registry.Config{Backend: b})
			return target{[]string{"--registry-dir", dir}, reg}
		},
		"redis-cluster": func(t *testing.T) target {
			c, prefix := testenv.RedisClusterClient(t)
			prefix = strings.TrimSuffix(prefix, ":")
			b, _ := registry.NewRedisBackend(registry.RedisBackendConfig{Client: c, Prefix: prefix})
			reg, _ := registry.New(registry.Config{Backend: b})
			return target{[]string{"--redis-cluster", strings.Join(testenv.RedisCluster(t), ","), "--prefix", prefix}, reg}
		},
	}
	for name, mk := range targets {
		t.Run(name, func(t *testing.T) {
			tg := mk(t)
			ctx := context.Background()
			m := testModel(t)
			for i := 0; i < 3; i++ {
				if _, err := tg.reg.Create(ctx, registry.Version{Parent: int64(i), Arch: m.Arch(), Examples: int64(100 * (i + 1)),
					Metrics: map[string]map[string]registry.Metrics{inputs.HeadPurchase: {"network": {AUC: 0.7 + 0.01*registry.Float(i)}}}}, m, nil); err != nil {
					t.Fatal(err)
				}
			}
			cli := func(args ...string) (string, string, int) {
				var out, errb bytes.Buffer
				code := run(append(append([]string{"model"}, tg.flags...), args...), &out, &errb)
				return out.String(), errb.String(), code
			}
			out, errs, code := cli("list")
			if code != 0 || strings.Count(out, "candidate") != 3 || !strings.Contains(out, "purchase_propensity=0.7200") {
				t.Fatalf("list: code %d, out %q, err %q", code, out, errs)
			}
			for _, c := range []struct {
				args []string
				want string
			}{
				{[]string{"promote", "1"}, "version 1 is champion"},
				{[]string{"promote", "3", "--note", "canary passed"}, "version 3 is champion"},
				{[]string{"rollback"}, "version 1 is champion"},
			} {
				out, errs, code := cli(c.args...)
				if code != 0 || !strings.Contains(out, c.want) {
					t.Fatalf("%v: code %d, out %q, err %q", c.args, code, out, errs)
				}
			}
			out, _, code = cli("show", "3")
			var v registry.Version
			if code != 0 || json.Unmarshal([]byte(out), &v) != nil {
				t.Fatalf("show 3: code %d, %q", code, out)
			}
			if v.Status != registry.StatusRolledBack || !strings.Contains(v.Notes[0].Text, "canary passed") {
				t.Errorf("version 3 after rollback: %+v", v)
			}
			if meta, _ := tg.reg.Meta(ctx); meta.Champion != 1 {
				t.Errorf("champion %d, want 1", meta.Champion)
			}
			for _, bad := range [][]string{{}, {"show"}, {"show", "x"}, {"promote", "0"}, {"frobnicate"}, {"list", "2"}} {
				if _, _, code := cli(bad...); code != 2 {
					t.Errorf("%v: exit %d, want 2 (usage)", bad, code)
				}
			}
			if _, errs, code := cli("promote", "99"); code != 1 || !strings.Contains(errs, "not found") {
				t.Errorf("promote 99: exit %d, %q", code, errs)
			}
		})
	}
}
