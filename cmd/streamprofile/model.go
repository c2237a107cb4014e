package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/streamprofile/streamprofile/app"
	"github.com/streamprofile/streamprofile/model/registry"
	"github.com/streamprofile/streamprofile/model/trainer"
)

const modelUsage = `usage: streamprofile model [flags] <list | show N | promote N | rollback>

  list        every version: number, status, parent, created, examples, AUC per task
  show N      version N as JSON (without weights)
  promote N   make version N the champion (the current one is retired)
  rollback    roll the champion back to the previous good champion`

func runModel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("model", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, modelUsage)
		fmt.Fprintln(stderr, "\nflags:")
		fs.PrintDefaults()
	}
	var cfg app.RegistryConfig
	var brokers, redisCluster, note string
	fs.StringVar(&cfg.Dir, "registry-dir", "", "model registry directory (else Redis)")
	fs.StringVar(&cfg.Redis.Addr, "redis", "127.0.0.1:6379", "Redis address of the model registry (standalone)")
	fs.StringVar(&redisCluster, "redis-cluster", "", "Redis Cluster seed addresses, comma-separated (overrides --redis)")
	fs.StringVar(&cfg.Prefix, "prefix", "sp", "Redis key prefix of the registry")
	fs.StringVar(&brokers, "brokers", "", "Kafka brokers to announce changes on (optional)")
	fs.StringVar(&cfg.Topic, "versions-topic", registry.DefaultTopic, "compacted topic announcing versions")
	fs.StringVar(&note, "note", "by the model command", "note recorded with a promotion or rollback")
	// Flags may come before or after the subcommand.
	var pos []string
	rest := args
	for {
		if err := parseFlagsLoose(fs, rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(pos) == 0 {
		return usageError{errors.New("missing subcommand: list, show N, promote N or rollback")}
	}
	cfg.Brokers = splitList(brokers)
	cfg.Redis.Cluster = splitList(redisCluster)
	num := func() (int64, error) {
		if len(pos) != 2 {
			return 0, usageError{fmt.Errorf("%s needs one version number", pos[0])}
		}
		n, err := strconv.ParseInt(pos[1], 10, 64)
		if err != nil || n < 1 {
			return 0, usageError{fmt.Errorf("version %q is not a positive number", pos[1])}
		}
		return n, nil
	}
	switch pos[0] {
	case "list", "rollback":
		if len(pos) != 1 {
			return usageError{fmt.Errorf("%s takes no arguments", pos[0])}
		}
	case "show", "promote":
		if _, err := num(); err != nil {
			return err
		}
	default:
		return usageError{fmt.Errorf("unknown subcommand %q (list, show N, promote N, rollback)", pos[0])}
	}
	reg, closer, err := app.OpenRegistry(cfg)
	if err != nil {
		return err
	}
	defer closer.Close()
	switch pos[0] {
	case "list":
		vs, err := reg.List(ctx)
		if err != nil {
			return err
		}
		return printVersions(stdout, vs)
	case "show":
		n, _ := num()
		v, err := reg.Get(ctx, n)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "promote":
		n, _ := num()
		v, err := reg.Promote(ctx, n, note)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "version %d is champion\n", v.Number)
	case "rollback":
		v, err := reg.Rollback(ctx, note)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rolled back; version %d is champion\n", v.Number)
	}
	return nil
}

// parseFlagsLoose is parseFlags allowing positional arguments (the
// subcommand and its version number).
func parseFlagsLoose(fs *flag.FlagSet, args []string) error {
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		key := envKey(f.Name)
		if v, ok := os.LookupEnv(key); ok && !isSet(fs, f.Name) {
			if err := f.Value.Set(v); err != nil && envErr == nil {
				envErr = usageError{fmt.Errorf("%s=%q: %w", key, v, err)}
			}
		}
	})
	if envErr != nil {
		return envErr
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	return nil
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func printVersions(w io.Writer, vs []registry.Version) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSTATUS\tPARENT\tCREATED\tEXAMPLES\tAUC per task (gate window, else network window)")
	for _, v := range vs {
		tasks := make([]string, 0, len(v.Metrics))
		for t := range v.Metrics {
			tasks = append(tasks, t)
		}
		sort.Strings(tasks)
		var aucs []string
		for _, t := range tasks {
			m := v.Metrics[t][trainer.ModelNetwork]
			if c, ok := v.Metrics[t][trainer.ModelChallenger]; ok {
				m = c
			}
			aucs = append(aucs, fmt.Sprintf("%s=%.4f", t, float64(m.AUC)))
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%d\t%s\n", v.Number, v.Status, v.Parent, v.CreatedAt.Format("2006-01-02T15:04:05Z"), v.Examples, strings.Join(aucs, " "))
	}
	return tw.Flush()
}
