// Command streamprofile turns e-commerce clickstreams into real-time
// customer profiles. Run `streamprofile help` for the subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/streamprofile/streamprofile/observability"
)

// command is one subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() map[string]command {
	return map[string]command{
		"bench":  {"measure throughput, latency, Redis cost and memory on the real stack", runBench},
		"demo":   {"run everything in-process and replay the bundled real sample", runDemo},
		"ingest": {"consume the clickstream into per-user features in Redis", runIngest},
		"model":  {"list, show, promote or roll back model versions in the registry", runModel},
		"train":  {"learn the model continuously from profile snapshots; cut versions", runTrain},
		"replay": {"publish a dataset (jsonl, rees46, cdnow) to Kafka as schema-1 events", runReplay},
		"score":  {"score snapshots, evaluate segments, emit segment changes and retargeting triggers", runScore},
		"serve":  {"serve the profile HTTP API (lookups, segments, GDPR erasure)", runServe},
		"token":  {"mint an API bearer token and print its token-file entry", runToken},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "streamprofile: unknown command %q\n\n", args[0])
		usage(stderr, cmds)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := c.run(ctx, args[1:], stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "streamprofile %s: %v\n", args[0], err)
			return 2
		}
		fmt.Fprintf(stderr, "streamprofile %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: streamprofile <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun `streamprofile <command> -h` for its flags. Every flag can also be set with the")
	fmt.Fprintln(w, "environment variable STREAMPROFILE_<FLAG> (upper case, '-' → '_').")
}

// usageError marks a bad command line.
type usageError struct{ error }

// newFlags returns a flag set whose defaults can come from STREAMPROFILE_*
// environment variables (applied by parseFlags).
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags applies STREAMPROFILE_<FLAG> environment variables, then the
// command line (which wins).
func parseFlags(fs *flag.FlagSet, args []string) error {
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		key := envKey(f.Name)
		if v, ok := os.LookupEnv(key); ok {
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
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	return nil
}

// envKey is the environment variable of flag name: STREAMPROFILE_<NAME>,
// dashes as underscores.
func envKey(name string) string {
	return "STREAMPROFILE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// newLogger builds the process logger: text or JSON (--log-format) at
// level, with user ids, e-mail and IP addresses redacted
// (observability.NewLogger).
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Errorf("log level %q: %w", level, err)}
	}
	log, err := observability.NewLogger(w, format, lv)
	if err != nil {
		return nil, usageError{err}
	}
	return log, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
