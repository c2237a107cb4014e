package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/streamprofile/streamprofile/api"
	"github.com/streamprofile/streamprofile/app"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg app.ServeConfig
	fs := newFlags("serve", stderr)
	var brokers, redisAddr, redisCluster, logFormat, logLevel, acks string
	fs.StringVar(&cfg.API.Addr, "addr", ":8080", "listen address of the profile API")
	fs.StringVar(&cfg.API.TokensFile, "tokens-file", "", "YAML file of accepted bearer tokens (SHA-256 hashes and scopes); required")
	fs.StringVar(&cfg.API.TLSCertFile, "tls-cert", "", "PEM certificate file (with --tls-key: serve HTTPS)")
	fs.StringVar(&cfg.API.TLSKeyFile, "tls-key", "", "PEM key file")
	fs.StringVar(&brokers, "brokers", "", "Kafka bootstrap brokers, comma-separated (erasures are announced there)")
	fs.StringVar(&redisAddr, "redis", "127.0.0.1:6379", "Redis address (standalone)")
	fs.StringVar(&redisCluster, "redis-cluster", "", "Redis Cluster seed addresses, comma-separated (overrides --redis)")
	fs.StringVar(&cfg.Store.Prefix, "prefix", "sp", "Redis key prefix")
	fs.StringVar(&cfg.Store.Group, "group", "streamprofile", "the ingest consumer group (its checkpoints drive --clock stream)")
	fs.StringVar(&cfg.PseudonymKeyFile, "pseudonym-key-file", "", "the ingesters' pseudonym key file")
	fs.StringVar(&cfg.Clock, "clock", "wall", "evaluate windowed features at: wall (now) or stream (the newest event time ingested)")
	fs.StringVar(&acks, "erasure-acks", "scorer,trainer", "roles whose acknowledgement completes an erasure")
	fs.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&logLevel, "log-level", "info", "log level")
	var tf telemetryFlags
	tf.register(fs, ":9090")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := newLogger(stderr, logFormat, logLevel)
	if err != nil {
		return err
	}
	cfg.Logger = log
	tel, stopTelemetry, err := tf.setup(ctx, "streamprofile-serve", log)
	if err != nil {
		return err
	}
	defer stopTelemetry()
	cfg.Telemetry = tel
	cfg.Brokers = splitList(brokers)
	cfg.Redis = app.RedisConfig{Addr: redisAddr, Cluster: splitList(redisCluster)}
	cfg.ErasureAcks = splitList(acks)
	s, err := app.NewServer(cfg)
	if err != nil {
		return usageError{err}
	}
	defer s.Close()
	// SIGHUP reloads --tokens-file: tokens rotate without a restart.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	rctx, stopReload := context.WithCancel(ctx)
	defer stopReload()
	go s.API().ReloadTokensOn(rctx, hup)
	log.Info("serve listening", "addr", cfg.API.Addr)
	return tel.Admin.Serve(ctx, s.Run)
}

// runToken mints a bearer token and prints the token-file entry that
// accepts it.
func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("token", stderr)
	var name, scopes, expires string
	fs.StringVar(&name, "name", "client", "name of the token's holder")
	fs.StringVar(&scopes, "scopes", "profiles:read", "comma-separated scopes: profiles:read, profiles:erase, admin")
	fs.StringVar(&expires, "expires", "", "optional RFC 3339 expiry")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	tok, sum, err := api.MintToken()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "# token (give it to %s; it is not stored anywhere): %s\n# add this entry under \"tokens:\" in the --tokens-file of serve:\n", name, tok)
	fmt.Fprintf(stdout, "- name: %s\n  sha256: %s\n  scopes: [%s]\n", name, sum, strings.Join(splitList(scopes), ", "))
	if expires != "" {
		fmt.Fprintf(stdout, "  expires: %s\n", expires)
	}
	return nil
}
