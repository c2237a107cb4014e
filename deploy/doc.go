// Package deploy holds streamprofile's deployment files and the tests that
// validate them without a container engine or a cluster.
//
// The files (paths relative to the repository root):
//
//	Dockerfile, .dockerignore          the image: static binary on scratch, non-root
//	docker-compose.yml                 the whole stack on one machine
//	deploy/METRICS.md                  the metrics contract (parsed by ParseContract)
//	deploy/otel-collector.yaml         OpenTelemetry Collector: OTLP in, Jaeger out
//	deploy/prometheus/                 scrape configuration and alert rules
//	deploy/grafana/                    provisioned datasources and the dashboard
//	deploy/config/                     segments.yaml and development-only secrets
//	deploy/k8s/                        Kubernetes manifests (kustomization.yaml)
//
// The package's only API is the metrics contract: LoadContract returns the
// metric families, labels and label values that METRICS.md lists, so that
// the code registering metrics can check itself against the same table the
// dashboard and the alert rules are checked against.
//
// The tests are the validation: they parse every file with the YAML and JSON
// decoders, check cross-references between them (services, ports, mounted
// files, ConfigMap and Secret keys, label selectors, scrape targets, metric
// names), lint the Dockerfile, and run the streamprofile binary's `-h` to
// check that every flag and STREAMPROFILE_* variable the deployment files
// set is accepted by the subcommand that receives it. README.md says what is
// and is not covered.
package deploy
