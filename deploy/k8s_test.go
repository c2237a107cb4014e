package deploy

import (
	"fmt"
	"math/big"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const k8sDir = "deploy/k8s"

// The Kubernetes model: the fields of each kind that the manifests use.
// Decoding is strict, so a misspelt or misplaced field (readinessprobe,
// securityContext on the wrong level) fails TestK8sDocuments instead of
// being dropped silently by the API server's pruning, and fields the
// deployment must not use (hostPath, hostNetwork, privileged) are refused
// because they are not modelled. This is a structural
// check, not the full OpenAPI schema: see README.md for kubeconform.

type objectMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type typeMeta struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type k8sNamespace struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
}

type k8sConfigMap struct {
	APIVersion string            `yaml:"apiVersion"`
	Kind       string            `yaml:"kind"`
	Metadata   objectMeta        `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
}

type k8sSecret struct {
	APIVersion string            `yaml:"apiVersion"`
	Kind       string            `yaml:"kind"`
	Metadata   objectMeta        `yaml:"metadata"`
	Type       string            `yaml:"type"`
	StringData map[string]string `yaml:"stringData"`
	Data       map[string]string `yaml:"data"`
}

type k8sPVC struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
	Spec       struct {
		AccessModes      []string `yaml:"accessModes"`
		StorageClassName *string  `yaml:"storageClassName"`
		Resources        struct {
			Requests map[string]string `yaml:"requests"`
		} `yaml:"resources"`
	} `yaml:"spec"`
}

type k8sDeployment struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
	Spec       struct {
		Replicas             *int          `yaml:"replicas"`
		RevisionHistoryLimit *int          `yaml:"revisionHistoryLimit"`
		Selector             labelSelector `yaml:"selector"`
		Strategy             *struct {
			Type          string `yaml:"type"`
			RollingUpdate *struct {
				MaxSurge       intOrString `yaml:"maxSurge"`
				MaxUnavailable intOrString `yaml:"maxUnavailable"`
			} `yaml:"rollingUpdate"`
		} `yaml:"strategy"`
		Template struct {
			Metadata objectMeta `yaml:"metadata"`
			Spec     podSpec    `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	AutomountServiceAccountToken  *bool `yaml:"automountServiceAccountToken"`
	TerminationGracePeriodSeconds *int  `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               *struct {
		RunAsNonRoot   *bool  `yaml:"runAsNonRoot"`
		RunAsUser      *int64 `yaml:"runAsUser"`
		RunAsGroup     *int64 `yaml:"runAsGroup"`
		FSGroup        *int64 `yaml:"fsGroup"`
		SeccompProfile *struct {
			Type string `yaml:"type"`
		} `yaml:"seccompProfile"`
	} `yaml:"securityContext"`
	TopologySpreadConstraints []struct {
		MaxSkew           int           `yaml:"maxSkew"`
		TopologyKey       string        `yaml:"topologyKey"`
		WhenUnsatisfiable string        `yaml:"whenUnsatisfiable"`
		LabelSelector     labelSelector `yaml:"labelSelector"`
	} `yaml:"topologySpreadConstraints"`
	Containers []k8sContainer `yaml:"containers"`
	Volumes    []k8sVolume    `yaml:"volumes"`
}

// intOrString holds an IntOrString field (a port name or number).
type intOrString string

type keyRef struct {
	Name string `yaml:"name"`
	Key  string `yaml:"key"`
}

type k8sContainer struct {
	Name            string   `yaml:"name"`
	Image           string   `yaml:"image"`
	ImagePullPolicy string   `yaml:"imagePullPolicy"`
	Command         []string `yaml:"command"`
	Args            []string `yaml:"args"`
	EnvFrom         []struct {
		ConfigMapRef *struct {
			Name string `yaml:"name"`
		} `yaml:"configMapRef"`
		SecretRef *struct {
			Name string `yaml:"name"`
		} `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			ConfigMapKeyRef *keyRef `yaml:"configMapKeyRef"`
			SecretKeyRef    *keyRef `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
		Protocol      string `yaml:"protocol"`
	} `yaml:"ports"`
	StartupProbe   *k8sProbe `yaml:"startupProbe"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext *struct {
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		Capabilities             *struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
		SubPath   string `yaml:"subPath"`
	} `yaml:"volumeMounts"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string      `yaml:"path"`
		Port intOrString `yaml:"port"`
	} `yaml:"httpGet"`
	InitialDelaySeconds int `yaml:"initialDelaySeconds"`
	PeriodSeconds       int `yaml:"periodSeconds"`
	TimeoutSeconds      int `yaml:"timeoutSeconds"`
	FailureThreshold    int `yaml:"failureThreshold"`
	SuccessThreshold    int `yaml:"successThreshold"`
}

type keyToPath struct {
	Key  string `yaml:"key"`
	Path string `yaml:"path"`
}

type k8sVolume struct {
	Name     string `yaml:"name"`
	EmptyDir *struct {
		SizeLimit string `yaml:"sizeLimit"`
		Medium    string `yaml:"medium"`
	} `yaml:"emptyDir"`
	ConfigMap *struct {
		Name        string      `yaml:"name"`
		Items       []keyToPath `yaml:"items"`
		DefaultMode *int        `yaml:"defaultMode"`
	} `yaml:"configMap"`
	Secret *struct {
		SecretName  string      `yaml:"secretName"`
		Items       []keyToPath `yaml:"items"`
		DefaultMode *int        `yaml:"defaultMode"`
	} `yaml:"secret"`
	PersistentVolumeClaim *struct {
		ClaimName string `yaml:"claimName"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"persistentVolumeClaim"`
}

type k8sService struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
	Spec       struct {
		Type     string            `yaml:"type"`
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Name       string      `yaml:"name"`
			Port       int         `yaml:"port"`
			TargetPort intOrString `yaml:"targetPort"`
			Protocol   string      `yaml:"protocol"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type k8sPDB struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
	Spec       struct {
		MinAvailable   *intOrString  `yaml:"minAvailable"`
		MaxUnavailable *intOrString  `yaml:"maxUnavailable"`
		Selector       labelSelector `yaml:"selector"`
	} `yaml:"spec"`
}

type hpaPolicy struct {
	Type          string `yaml:"type"`
	Value         int    `yaml:"value"`
	PeriodSeconds int    `yaml:"periodSeconds"`
}

type hpaRules struct {
	StabilizationWindowSeconds *int        `yaml:"stabilizationWindowSeconds"`
	Policies                   []hpaPolicy `yaml:"policies"`
}

type k8sScaledObject struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
	Spec       struct {
		ScaleTargetRef struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
			Name       string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
		MinReplicaCount *int `yaml:"minReplicaCount"`
		MaxReplicaCount *int `yaml:"maxReplicaCount"`
		PollingInterval *int `yaml:"pollingInterval"`
		CooldownPeriod  *int `yaml:"cooldownPeriod"`
		Advanced        *struct {
			HorizontalPodAutoscalerConfig *struct {
				Behavior *struct {
					ScaleUp   *hpaRules `yaml:"scaleUp"`
					ScaleDown *hpaRules `yaml:"scaleDown"`
				} `yaml:"behavior"`
			} `yaml:"horizontalPodAutoscalerConfig"`
		} `yaml:"advanced"`
		Triggers []struct {
			Type     string            `yaml:"type"`
			Metadata map[string]string `yaml:"metadata"`
		} `yaml:"triggers"`
	} `yaml:"spec"`
}

type kustomization struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Namespace  string   `yaml:"namespace"`
	Resources  []string `yaml:"resources"`
	Images     []struct {
		Name    string `yaml:"name"`
		NewName string `yaml:"newName"`
		NewTag  string `yaml:"newTag"`
	} `yaml:"images"`
}

// k8sKinds maps each kind the manifests may contain to its apiVersion.
var k8sKinds = map[string]string{
	"Namespace":             "v1",
	"ConfigMap":             "v1",
	"Secret":                "v1",
	"PersistentVolumeClaim": "v1",
	"Service":               "v1",
	"Deployment":            "apps/v1",
	"PodDisruptionBudget":   "policy/v1",
	"ScaledObject":          "keda.sh/v1alpha1",
}

// k8sManifests is every object of the kustomization, decoded.
type k8sManifests struct {
	Kustomization kustomization
	Objects       []k8sObject // in file order
	Namespaces    []*k8sNamespace
	ConfigMaps    map[string]*k8sConfigMap
	Secrets       map[string]*k8sSecret
	PVCs          map[string]*k8sPVC
	Deployments   map[string]*k8sDeployment
	Services      map[string]*k8sService
	PDBs          map[string]*k8sPDB
	ScaledObjects map[string]*k8sScaledObject
}

type k8sObject struct {
	File string
	typeMeta
}

// loadK8s reads kustomization.yaml and strictly decodes every document of
// every resource it lists.
func loadK8s(t testing.TB) *k8sManifests {
	t.Helper()
	m := &k8sManifests{
		ConfigMaps: map[string]*k8sConfigMap{}, Secrets: map[string]*k8sSecret{}, PVCs: map[string]*k8sPVC{},
		Deployments: map[string]*k8sDeployment{}, Services: map[string]*k8sService{}, PDBs: map[string]*k8sPDB{},
		ScaledObjects: map[string]*k8sScaledObject{},
	}
	readYAMLStrict(t, k8sDir+"/kustomization.yaml", &m.Kustomization)
	for _, res := range m.Kustomization.Resources {
		rel := path.Join(k8sDir, res)
		docs, err := yamlDocs(readRepoFile(t, rel))
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		for i, doc := range docs {
			var tm typeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s document %d: %v", rel, i+1, err)
			}
			m.Objects = append(m.Objects, k8sObject{File: rel, typeMeta: tm})
			where := fmt.Sprintf("%s document %d (%s %s)", rel, i+1, tm.Kind, tm.Metadata.Name)
			var target any
			switch tm.Kind {
			case "Namespace":
				ns := &k8sNamespace{}
				m.Namespaces, target = append(m.Namespaces, ns), ns
			case "ConfigMap":
				o := &k8sConfigMap{}
				m.ConfigMaps[tm.Metadata.Name], target = o, o
			case "Secret":
				o := &k8sSecret{}
				m.Secrets[tm.Metadata.Name], target = o, o
			case "PersistentVolumeClaim":
				o := &k8sPVC{}
				m.PVCs[tm.Metadata.Name], target = o, o
			case "Deployment":
				o := &k8sDeployment{}
				m.Deployments[tm.Metadata.Name], target = o, o
			case "Service":
				o := &k8sService{}
				m.Services[tm.Metadata.Name], target = o, o
			case "PodDisruptionBudget":
				o := &k8sPDB{}
				m.PDBs[tm.Metadata.Name], target = o, o
			case "ScaledObject":
				o := &k8sScaledObject{}
				m.ScaledObjects[tm.Metadata.Name], target = o, o
			default:
				t.Fatalf("%s: kind %q is not modelled by this test", where, tm.Kind)
			}
			if err := decodeStrict(doc, target); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
		}
	}
	return m
}

// containerEnv returns the variables a container gets through envFrom
// ConfigMaps, then its env list (which wins), as name → value. A
// configMapKeyRef value is resolved; a secretKeyRef value is left empty.
func (m *k8sManifests) containerEnv(c *k8sContainer) map[string]string {
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil {
			if cm, ok := m.ConfigMaps[ef.ConfigMapRef.Name]; ok {
				for k, v := range cm.Data {
					env[k] = v
				}
			}
		}
	}
	for _, e := range c.Env {
		env[e.Name] = e.Value
		if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
			if cm, ok := m.ConfigMaps[e.ValueFrom.ConfigMapKeyRef.Name]; ok {
				env[e.Name] = cm.Data[e.ValueFrom.ConfigMapKeyRef.Key]
			}
		}
	}
	return env
}

// flagValue returns the value a container passes for flag name, from its
// args (--name=value) or, failing that, its STREAMPROFILE_* environment.
func (m *k8sManifests) flagValue(c *k8sContainer, name string) (string, bool) {
	for _, a := range c.Args[min(1, len(c.Args)):] {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	v, ok := m.containerEnv(c)[envName(name)]
	return v, ok
}

// envName is the environment variable that sets a flag.
func envName(flag string) string {
	return "STREAMPROFILE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// selects reports whether every matchLabels pair is among labels.
func selects(sel map[string]string, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

var dns1123RE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func TestK8sDocuments(t *testing.T) {
	m := loadK8s(t)
	k := m.Kustomization
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml: %s %s", k.APIVersion, k.Kind)
	}
	if !dns1123RE.MatchString(k.Namespace) {
		t.Errorf("kustomization namespace %q", k.Namespace)
	}
	// Every manifest in the directory is a resource, and every resource exists.
	files, err := filepath.Glob(filepath.Join(repoPath(t, k8sDir), "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && !slices.Contains(k.Resources, b) {
			t.Errorf("%s is not listed in kustomization.yaml resources", b)
		}
	}
	seen := map[string]string{}
	for _, o := range m.Objects {
		where := fmt.Sprintf("%s: %s %q", o.File, o.Kind, o.Metadata.Name)
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
			t.Errorf("%s: apiVersion, kind and metadata.name are required", where)
		}
		if want := k8sKinds[o.Kind]; o.APIVersion != want {
			t.Errorf("%s: apiVersion %q, want %q", where, o.APIVersion, want)
		}
		if !dns1123RE.MatchString(o.Metadata.Name) || len(o.Metadata.Name) > 63 {
			t.Errorf("%s: name is not a DNS-1123 label", where)
		}
		if o.Kind == "Namespace" {
			if o.Metadata.Name != k.Namespace || o.Metadata.Namespace != "" {
				t.Errorf("%s: want the kustomization namespace %q, unnamespaced", where, k.Namespace)
			}
		} else if o.Metadata.Namespace != k.Namespace {
			t.Errorf("%s: namespace %q, want %q (so plain kubectl apply -f lands in the same place)", where, o.Metadata.Namespace, k.Namespace)
		}
		id := o.Kind + "/" + o.Metadata.Name
		if other, dup := seen[id]; dup {
			t.Errorf("%s: also defined in %s", where, other)
		}
		seen[id] = o.File
	}
	if len(m.Namespaces) != 1 {
		t.Fatalf("%d Namespace objects, want 1", len(m.Namespaces))
	}
	// The pods below satisfy the restricted Pod Security Standard; the
	// namespace enforces it so a regression is refused at admission.
	if got := m.Namespaces[0].Metadata.Labels["pod-security.kubernetes.io/enforce"]; got != "restricted" {
		t.Errorf("namespace: pod-security.kubernetes.io/enforce %q, want restricted", got)
	}
	for _, img := range k.Images {
		if img.NewTag == "" || img.NewTag == "latest" {
			t.Errorf("kustomization images %s: newTag %q", img.Name, img.NewTag)
		}
		used := false
		for _, d := range m.Deployments {
			for _, c := range d.Spec.Template.Spec.Containers {
				name, tag, _ := strings.Cut(c.Image, ":")
				if name == img.Name {
					used = true
					if tag != img.NewTag {
						t.Errorf("deployment %s: image tag %q differs from kustomization newTag %q", d.Metadata.Name, tag, img.NewTag)
					}
				}
			}
		}
		if !used {
			t.Errorf("kustomization images: %s is used by no container", img.Name)
		}
	}
}

// k8sRoles is what runs on Kubernetes: Deployment → subcommand, replicas
// and strategy.
var k8sRoles = map[string]struct {
	subcommand string
	replicas   int
	strategy   string
}{
	"ingest":  {"ingest", 2, "RollingUpdate"},
	"trainer": {"train", 1, "Recreate"},
	"score":   {"score", 1, ""},
	"serve":   {"serve", 2, "RollingUpdate"},
}

func TestK8sDeployments(t *testing.T) {
	m := loadK8s(t)
	if got, want := sortedKeys(m.Deployments), sortedKeys(k8sRoles); !slices.Equal(got, want) {
		t.Errorf("deployments %v, want %v", got, want)
	}
	for _, name := range sortedKeys(m.Deployments) {
		t.Run(name, func(t *testing.T) {
			d := m.Deployments[name]
			role := k8sRoles[name]
			spec := d.Spec
			if spec.Replicas == nil || *spec.Replicas != role.replicas {
				t.Errorf("replicas %v, want %d", spec.Replicas, role.replicas)
			}
			if role.strategy != "" && (spec.Strategy == nil || spec.Strategy.Type != role.strategy) {
				t.Errorf("strategy %+v, want %s", spec.Strategy, role.strategy)
			}
			if !selects(spec.Selector.MatchLabels, spec.Template.Metadata.Labels) {
				t.Errorf("selector %v does not match the pod labels %v", spec.Selector.MatchLabels, spec.Template.Metadata.Labels)
			}
			for other, od := range m.Deployments {
				if other != name && selects(spec.Selector.MatchLabels, od.Spec.Template.Metadata.Labels) {
					t.Errorf("selector %v also matches the pods of deployment %s", spec.Selector.MatchLabels, other)
				}
			}
			for _, c := range spec.Template.Spec.TopologySpreadConstraints {
				if !selects(c.LabelSelector.MatchLabels, spec.Template.Metadata.Labels) {
					t.Errorf("topologySpreadConstraint selector %v does not match the pods", c.LabelSelector.MatchLabels)
				}
			}
			pod := spec.Template.Spec
			if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
				t.Error("automountServiceAccountToken: want false (no role talks to the Kubernetes API)")
			}
			psc := pod.SecurityContext
			switch {
			case psc == nil:
				t.Error("no pod securityContext")
			default:
				if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
					t.Error("pod securityContext: want runAsNonRoot: true")
				}
				if psc.RunAsUser == nil || *psc.RunAsUser == 0 {
					t.Error("pod securityContext: want a non-zero runAsUser")
				}
				if psc.SeccompProfile == nil || psc.SeccompProfile.Type != "RuntimeDefault" {
					t.Error("pod securityContext: want seccompProfile RuntimeDefault")
				}
			}
			if len(pod.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(pod.Containers))
			}
			c := &pod.Containers[0]
			if len(c.Args) == 0 || c.Args[0] != role.subcommand {
				t.Errorf("args %q, want [%s ...]", c.Args, role.subcommand)
			}
			if len(c.Command) > 0 {
				t.Errorf("command %q overrides the image's entrypoint", c.Command)
			}
			if why := imagePinned(c.Image); why != "" {
				t.Errorf("image %q is not pinned: %s", c.Image, why)
			}
			checkContainerSecurity(t, c)
			checkContainerResources(t, m, c)
			checkProbes(t, m, d, c)
			checkVolumes(t, m, pod, c)
		})
	}
}

func checkContainerSecurity(t *testing.T, c *k8sContainer) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil {
		t.Error("no container securityContext")
		return
	}
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("container securityContext: want runAsNonRoot: true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("container securityContext: want allowPrivilegeEscalation: false")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("container securityContext: want readOnlyRootFilesystem: true")
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Error("container securityContext: want capabilities.drop [ALL]")
	}
}

// parseQuantity parses a Kubernetes resource quantity ("250m", "1",
// "512Mi", "2Gi", "1e3") into an exact rational.
func parseQuantity(s string) (*big.Rat, error) {
	suffixes := []struct {
		suffix string
		mult   *big.Rat
	}{
		{"Ki", big.NewRat(1<<10, 1)}, {"Mi", big.NewRat(1<<20, 1)}, {"Gi", big.NewRat(1<<30, 1)},
		{"Ti", big.NewRat(1<<40, 1)}, {"Pi", big.NewRat(1<<50, 1)}, {"Ei", big.NewRat(1<<60, 1)},
		{"n", big.NewRat(1, 1e9)}, {"u", big.NewRat(1, 1e6)}, {"m", big.NewRat(1, 1e3)},
		{"k", big.NewRat(1e3, 1)}, {"M", big.NewRat(1e6, 1)}, {"G", big.NewRat(1e9, 1)},
		{"T", big.NewRat(1e12, 1)}, {"P", big.NewRat(1e15, 1)}, {"E", big.NewRat(1e18, 1)},
	}
	num, mult := s, big.NewRat(1, 1)
	for _, sf := range suffixes {
		if n, ok := strings.CutSuffix(s, sf.suffix); ok {
			num, mult = n, sf.mult
			break
		}
	}
	if num == "" || strings.ContainsAny(num, "+ ") || strings.HasPrefix(num, "-") {
		return nil, fmt.Errorf("quantity %q", s)
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return nil, fmt.Errorf("quantity %q", s)
	}
	return r.Mul(r, mult), nil
}

func TestParseQuantity(t *testing.T) {
	tests := []struct {
		in   string
		want *big.Rat
	}{
		{"250m", big.NewRat(1, 4)},
		{"1", big.NewRat(1, 1)},
		{"1.5", big.NewRat(3, 2)},
		{"512Mi", big.NewRat(512<<20, 1)},
		{"2Gi", big.NewRat(2<<30, 1)},
		{"1k", big.NewRat(1000, 1)},
		{"1e3", big.NewRat(1000, 1)},
	}
	for _, tt := range tests {
		got, err := parseQuantity(tt.in)
		if err != nil || got.Cmp(tt.want) != 0 {
			t.Errorf("parseQuantity(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "Mi", "-1", "1 Gi", "abc", "1.2.3"} {
		if _, err := parseQuantity(bad); err == nil {
			t.Errorf("parseQuantity(%q): no error", bad)
		}
	}
}

func FuzzParseQuantity(f *testing.F) {
	for _, s := range []string{"250m", "1", "512Mi", "2Gi", "1e3", "0.5", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := parseQuantity(s)
		if err == nil && q.Sign() < 0 {
			t.Fatalf("parseQuantity(%q) = %v < 0", s, q)
		}
	})
}

// goMemLimitBytes parses a GOMEMLIMIT value: bytes with an optional B, KiB,
// MiB, GiB or TiB suffix.
func goMemLimitBytes(s string) (int64, error) {
	for _, sf := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if n, ok := strings.CutSuffix(s, sf.suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil || v < 0 {
				return 0, fmt.Errorf("GOMEMLIMIT %q", s)
			}
			return v * sf.mult, nil
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("GOMEMLIMIT %q", s)
	}
	return v, nil
}

func checkContainerResources(t *testing.T, m *k8sManifests, c *k8sContainer) {
	t.Helper()
	for _, r := range []string{"cpu", "memory"} {
		req, errReq := parseQuantity(c.Resources.Requests[r])
		lim, errLim := parseQuantity(c.Resources.Limits[r])
		if errReq != nil {
			t.Errorf("resources.requests.%s: %v", r, errReq)
		}
		if errLim != nil {
			t.Errorf("resources.limits.%s: %v", r, errLim)
		}
		if errReq == nil && errLim == nil && req.Cmp(lim) > 0 {
			t.Errorf("resources: %s request %s exceeds limit %s", r, c.Resources.Requests[r], c.Resources.Limits[r])
		}
	}
	// The Go runtime should collect before the kernel kills: GOMEMLIMIT
	// below the memory limit, with head room for non-heap memory.
	gml, ok := m.containerEnv(c)["GOMEMLIMIT"]
	if !ok {
		t.Error("no GOMEMLIMIT: the Go heap does not know the memory limit")
		return
	}
	b, err := goMemLimitBytes(gml)
	if err != nil {
		t.Error(err)
		return
	}
	lim, err := parseQuantity(c.Resources.Limits["memory"])
	if err != nil {
		return
	}
	ratio, _ := new(big.Rat).Quo(big.NewRat(b, 1), lim).Float64()
	if ratio < 0.7 || ratio > 0.95 {
		t.Errorf("GOMEMLIMIT %s is %.0f%% of the memory limit %s, want 70–95%%", gml, 100*ratio, c.Resources.Limits["memory"])
	}
}

// adminPort returns the port of a container's --admin-addr (":9090").
func adminPort(m *k8sManifests, c *k8sContainer) (int, error) {
	addr, ok := m.flagValue(c, "admin-addr")
	if !ok {
		return 0, fmt.Errorf("no --admin-addr / STREAMPROFILE_ADMIN_ADDR")
	}
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return 0, fmt.Errorf("admin address %q has no port", addr)
	}
	return parsePortNumber(addr[i+1:])
}

// containerPort resolves a probe or Service port (a name or a number) to a
// container port number.
func containerPort(c *k8sContainer, p intOrString) (int, bool) {
	if n, err := strconv.Atoi(string(p)); err == nil {
		return n, true
	}
	for _, cp := range c.Ports {
		if cp.Name == string(p) {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

func checkProbes(t *testing.T, m *k8sManifests, d *k8sDeployment, c *k8sContainer) {
	t.Helper()
	admin, err := adminPort(m, c)
	if err != nil {
		t.Error(err)
		return
	}
	probes := []struct {
		name     string
		p        *k8sProbe
		path     string
		required bool
	}{
		{"readinessProbe", c.ReadinessProbe, "/readyz", true},
		{"livenessProbe", c.LivenessProbe, "/healthz", true},
		{"startupProbe", c.StartupProbe, "/healthz", false},
	}
	for _, pr := range probes {
		if pr.p == nil {
			if pr.required {
				t.Errorf("no %s", pr.name)
			}
			continue
		}
		if pr.p.HTTPGet == nil {
			t.Errorf("%s: want an httpGet probe", pr.name)
			continue
		}
		if pr.p.HTTPGet.Path != pr.path {
			t.Errorf("%s: path %q, want %s", pr.name, pr.p.HTTPGet.Path, pr.path)
		}
		if port, ok := containerPort(c, pr.p.HTTPGet.Port); !ok || port != admin {
			t.Errorf("%s: port %q is not the admin port %d", pr.name, pr.p.HTTPGet.Port, admin)
		}
		if pr.p.PeriodSeconds <= 0 || pr.p.FailureThreshold <= 0 {
			t.Errorf("%s: set periodSeconds and failureThreshold explicitly", pr.name)
		}
	}
	found := false
	for _, p := range c.Ports {
		found = found || p.ContainerPort == admin
	}
	if !found {
		t.Errorf("admin port %d is not declared in ports", admin)
	}
	ann := d.Spec.Template.Metadata.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != strconv.Itoa(admin) || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("prometheus.io annotations %v, want scrape true, port %d, path /metrics", ann, admin)
	}
}

// checkVolumes: mounts name declared volumes, every volume is mounted, the
// ConfigMaps, Secrets and claims they name exist, /tmp is writable, and
// every file or directory a flag names is provided by a mount.
func checkVolumes(t *testing.T, m *k8sManifests, pod podSpec, c *k8sContainer) {
	t.Helper()
	vols := map[string]*k8sVolume{}
	for i := range pod.Volumes {
		v := &pod.Volumes[i]
		vols[v.Name] = v
		switch {
		case v.ConfigMap != nil:
			cm, ok := m.ConfigMaps[v.ConfigMap.Name]
			if !ok {
				t.Errorf("volume %s: ConfigMap %q does not exist", v.Name, v.ConfigMap.Name)
				break
			}
			for _, it := range v.ConfigMap.Items {
				if _, ok := cm.Data[it.Key]; !ok {
					t.Errorf("volume %s: ConfigMap %s has no key %q", v.Name, cm.Metadata.Name, it.Key)
				}
			}
		case v.Secret != nil:
			s, ok := m.Secrets[v.Secret.SecretName]
			if !ok {
				t.Errorf("volume %s: Secret %q does not exist", v.Name, v.Secret.SecretName)
				break
			}
			for _, it := range v.Secret.Items {
				if !s.hasKey(it.Key) {
					t.Errorf("volume %s: Secret %s has no key %q", v.Name, s.Metadata.Name, it.Key)
				}
			}
			if v.Secret.DefaultMode == nil || *v.Secret.DefaultMode&0o007 != 0 {
				t.Errorf("volume %s: secret files must not be world-readable (defaultMode %v)", v.Name, v.Secret.DefaultMode)
			}
		case v.PersistentVolumeClaim != nil:
			if _, ok := m.PVCs[v.PersistentVolumeClaim.ClaimName]; !ok {
				t.Errorf("volume %s: PersistentVolumeClaim %q does not exist", v.Name, v.PersistentVolumeClaim.ClaimName)
			}
		case v.EmptyDir != nil:
		default:
			t.Errorf("volume %s: no source", v.Name)
		}
	}
	mounted := map[string]bool{}
	tmp := false
	for _, vm := range c.VolumeMounts {
		if _, ok := vols[vm.Name]; !ok {
			t.Errorf("volumeMount %s: no such volume", vm.Name)
		}
		mounted[vm.Name] = true
		tmp = tmp || vm.MountPath == "/tmp"
	}
	for name := range vols {
		if !mounted[name] {
			t.Errorf("volume %s is not mounted", name)
		}
	}
	if !tmp {
		t.Error("the root file system is read-only: mount an emptyDir at /tmp")
	}
	env := m.containerEnv(c)
	var values []string
	for _, a := range c.Args[min(1, len(c.Args)):] {
		if _, v, ok := strings.Cut(a, "="); ok {
			values = append(values, v)
		}
	}
	for k, v := range env {
		if strings.HasPrefix(k, "STREAMPROFILE_") {
			values = append(values, v)
		}
	}
	for _, v := range values {
		if !strings.HasPrefix(v, "/") {
			continue
		}
		if err := m.mountProvides(c, vols, v); err != nil {
			t.Errorf("flag value %s: %v", v, err)
		}
	}
}

func (s *k8sSecret) hasKey(k string) bool {
	_, a := s.StringData[k]
	_, b := s.Data[k]
	return a || b
}

// mountProvides reports how path p is provided inside container c: by a
// PVC or emptyDir mount (a writable directory), or by a ConfigMap or Secret
// mount that has the file.
func (m *k8sManifests) mountProvides(c *k8sContainer, vols map[string]*k8sVolume, p string) error {
	best := -1
	for i, vm := range c.VolumeMounts {
		if p == vm.MountPath || strings.HasPrefix(p, strings.TrimSuffix(vm.MountPath, "/")+"/") {
			if best < 0 || len(vm.MountPath) > len(c.VolumeMounts[best].MountPath) {
				best = i
			}
		}
	}
	if best < 0 {
		return fmt.Errorf("no volume is mounted there (the root file system is read-only and holds no configuration)")
	}
	vm := c.VolumeMounts[best]
	v, ok := vols[vm.Name]
	if !ok {
		return fmt.Errorf("volume %s is not declared", vm.Name)
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(p, vm.MountPath), "/")
	if vm.SubPath != "" {
		rel = path.Join(vm.SubPath, rel)
	}
	var items []keyToPath
	var keys func(string) bool
	switch {
	case v.ConfigMap != nil:
		cm := m.ConfigMaps[v.ConfigMap.Name]
		if cm == nil {
			return fmt.Errorf("ConfigMap %s does not exist", v.ConfigMap.Name)
		}
		items, keys = v.ConfigMap.Items, func(k string) bool { _, ok := cm.Data[k]; return ok }
	case v.Secret != nil:
		s := m.Secrets[v.Secret.SecretName]
		if s == nil {
			return fmt.Errorf("Secret %s does not exist", v.Secret.SecretName)
		}
		items, keys = v.Secret.Items, s.hasKey
	default:
		return nil // a directory volume: whatever the role writes there
	}
	if len(items) > 0 {
		for _, it := range items {
			if it.Path == rel {
				return nil
			}
		}
		return fmt.Errorf("volume %s projects no item at %q", vm.Name, rel)
	}
	if !keys(rel) {
		return fmt.Errorf("volume %s has no key %q", vm.Name, rel)
	}
	return nil
}

func TestK8sConfigAndSecrets(t *testing.T) {
	m := loadK8s(t)
	for _, name := range sortedKeys(m.Deployments) {
		for _, c := range m.Deployments[name].Spec.Template.Spec.Containers {
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef != nil {
					if _, ok := m.ConfigMaps[ef.ConfigMapRef.Name]; !ok {
						t.Errorf("deployment %s: envFrom ConfigMap %q does not exist", name, ef.ConfigMapRef.Name)
					}
				}
				if ef.SecretRef != nil {
					if _, ok := m.Secrets[ef.SecretRef.Name]; !ok {
						t.Errorf("deployment %s: envFrom Secret %q does not exist", name, ef.SecretRef.Name)
					}
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
					if cm, ok := m.ConfigMaps[r.Name]; !ok {
						t.Errorf("deployment %s: env %s: ConfigMap %q does not exist", name, e.Name, r.Name)
					} else if _, ok := cm.Data[r.Key]; !ok {
						t.Errorf("deployment %s: env %s: ConfigMap %s has no key %q", name, e.Name, r.Name, r.Key)
					}
				}
				if r := e.ValueFrom.SecretKeyRef; r != nil {
					if s, ok := m.Secrets[r.Name]; !ok {
						t.Errorf("deployment %s: env %s: Secret %q does not exist", name, e.Name, r.Name)
					} else if !s.hasKey(r.Key) {
						t.Errorf("deployment %s: env %s: Secret %s has no key %q", name, e.Name, r.Name, r.Key)
					}
				}
			}
		}
	}
	// The Secret in the repository holds placeholders only.
	for _, name := range sortedKeys(m.Secrets) {
		s := m.Secrets[name]
		if len(s.Data) > 0 {
			t.Errorf("secret %s: base64 data in the repository; use stringData placeholders", name)
		}
		for k, v := range s.StringData {
			if !strings.Contains(v, "REPLACE_ME") {
				t.Errorf("secret %s: key %s does not carry the REPLACE_ME placeholder marker", name, k)
			}
		}
	}
	// segments.yaml has one source of truth.
	cm, ok := m.ConfigMaps["streamprofile-config"]
	if !ok {
		t.Fatal("no ConfigMap streamprofile-config")
	}
	if want := string(readRepoFile(t, "deploy/config/segments.yaml")); cm.Data["segments.yaml"] != want {
		t.Error("ConfigMap streamprofile-config segments.yaml differs from deploy/config/segments.yaml; copy the file into the ConfigMap")
	}
	// Every ConfigMap and Secret is used.
	for _, name := range sortedKeys(m.ConfigMaps) {
		if !m.referenced(func(c *k8sContainer, v []k8sVolume) bool {
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef != nil && ef.ConfigMapRef.Name == name {
					return true
				}
			}
			return slices.ContainsFunc(v, func(v k8sVolume) bool { return v.ConfigMap != nil && v.ConfigMap.Name == name })
		}) {
			t.Errorf("ConfigMap %s is used by no deployment", name)
		}
	}
	for _, name := range sortedKeys(m.Secrets) {
		if !m.referenced(func(_ *k8sContainer, v []k8sVolume) bool {
			return slices.ContainsFunc(v, func(v k8sVolume) bool { return v.Secret != nil && v.Secret.SecretName == name })
		}) {
			t.Errorf("Secret %s is used by no deployment", name)
		}
	}
}

func (m *k8sManifests) referenced(f func(*k8sContainer, []k8sVolume) bool) bool {
	for _, d := range m.Deployments {
		for i := range d.Spec.Template.Spec.Containers {
			if f(&d.Spec.Template.Spec.Containers[i], d.Spec.Template.Spec.Volumes) {
				return true
			}
		}
	}
	return false
}

func TestK8sServicesAndPDBs(t *testing.T) {
	m := loadK8s(t)
	if _, ok := m.Services["serve"]; !ok {
		t.Error("no Service for serve")
	}
	for _, name := range sortedKeys(m.Services) {
		s := m.Services[name]
		var target *k8sDeployment
		for _, d := range m.Deployments {
			if selects(s.Spec.Selector, d.Spec.Template.Metadata.Labels) {
				if target != nil {
					t.Errorf("service %s selects the pods of more than one deployment", name)
				}
				target = d
			}
		}
		if target == nil {
			t.Errorf("service %s: selector %v matches no deployment's pods", name, s.Spec.Selector)
			continue
		}
		c := &target.Spec.Template.Spec.Containers[0]
		for _, p := range s.Spec.Ports {
			if _, ok := containerPort(c, p.TargetPort); !ok {
				t.Errorf("service %s: targetPort %q is not a port of %s", name, p.TargetPort, target.Metadata.Name)
			}
		}
	}
	covered := map[string]bool{}
	for _, name := range sortedKeys(m.PDBs) {
		p := m.PDBs[name]
		if (p.Spec.MinAvailable == nil) == (p.Spec.MaxUnavailable == nil) {
			t.Errorf("pdb %s: set exactly one of minAvailable and maxUnavailable", name)
		}
		var matched []string
		for dn, d := range m.Deployments {
			if selects(p.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels) {
				matched = append(matched, dn)
			}
		}
		if len(matched) != 1 {
			t.Errorf("pdb %s: selector %v matches the pods of %d deployments %v, want 1", name, p.Spec.Selector.MatchLabels, len(matched), matched)
			continue
		}
		d := m.Deployments[matched[0]]
		covered[matched[0]] = true
		// minAvailable equal to the replicas would block every node drain.
		if p.Spec.MinAvailable != nil {
			n, err := strconv.Atoi(string(*p.Spec.MinAvailable))
			if err == nil && d.Spec.Replicas != nil && n >= *d.Spec.Replicas {
				t.Errorf("pdb %s: minAvailable %d with %d replicas blocks every voluntary eviction", name, n, *d.Spec.Replicas)
			}
		}
	}
	for _, name := range sortedKeys(m.Deployments) {
		if !covered[name] {
			t.Errorf("deployment %s has no PodDisruptionBudget", name)
		}
	}
	// The trainer's volume is ReadWriteOnce: with it, only Recreate is safe.
	for _, name := range sortedKeys(m.Deployments) {
		d := m.Deployments[name]
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.PersistentVolumeClaim == nil {
				continue
			}
			pvc := m.PVCs[v.PersistentVolumeClaim.ClaimName]
			if pvc != nil && slices.Contains(pvc.Spec.AccessModes, "ReadWriteOnce") {
				if d.Spec.Strategy == nil || d.Spec.Strategy.Type != "Recreate" || d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
					t.Errorf("deployment %s mounts ReadWriteOnce claim %s: want 1 replica and strategy Recreate", name, pvc.Metadata.Name)
				}
			}
		}
	}
}

func TestK8sScaledObject(t *testing.T) {
	m := loadK8s(t)
	so, ok := m.ScaledObjects["ingest"]
	if !ok {
		t.Fatal("no ScaledObject ingest")
	}
	if len(m.ScaledObjects) != 1 {
		t.Errorf("%d ScaledObjects, want 1 (ingest)", len(m.ScaledObjects))
	}
	ref := so.Spec.ScaleTargetRef
	d, ok := m.Deployments[ref.Name]
	if !ok || ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" {
		t.Fatalf("scaleTargetRef %+v is not one of the deployments", ref)
	}
	c := &d.Spec.Template.Spec.Containers[0]
	if so.Spec.MinReplicaCount == nil || d.Spec.Replicas == nil || *so.Spec.MinReplicaCount != *d.Spec.Replicas {
		t.Errorf("minReplicaCount %v, want the deployment's replicas %v", so.Spec.MinReplicaCount, d.Spec.Replicas)
	}
	parts, ok := m.flagValue(c, "partitions")
	if !ok {
		t.Fatal("ingest sets no --partitions: the replica cap cannot be checked")
	}
	if so.Spec.MaxReplicaCount == nil {
		t.Error("no maxReplicaCount")
	} else if strconv.Itoa(*so.Spec.MaxReplicaCount) != parts {
		t.Errorf("maxReplicaCount %d, want the partition count %s (more consumers than partitions idle)", *so.Spec.MaxReplicaCount, parts)
	}
	if len(so.Spec.Triggers) != 1 || so.Spec.Triggers[0].Type != "kafka" {
		t.Fatalf("triggers %+v, want one kafka trigger", so.Spec.Triggers)
	}
	md := so.Spec.Triggers[0].Metadata
	for key, flag := range map[string]string{"bootstrapServers": "brokers", "consumerGroup": "group", "topic": "topic"} {
		want, ok := m.flagValue(c, flag)
		if !ok {
			t.Errorf("ingest sets no --%s", flag)
		}
		if md[key] != want {
			t.Errorf("kafka trigger %s %q, want ingest's --%s %q", key, md[key], flag, want)
		}
	}
	if n, err := strconv.Atoi(md["lagThreshold"]); err != nil || n <= 0 {
		t.Errorf("kafka trigger lagThreshold %q, want a positive integer", md["lagThreshold"])
	}
	if md["allowIdleConsumers"] != "false" {
		t.Errorf("kafka trigger allowIdleConsumers %q, want \"false\" (never more consumers than partitions)", md["allowIdleConsumers"])
	}
}

// TestK8sKustomizeBuild renders the kustomization with kubectl's built-in
// kustomize, where kubectl is installed, and checks that it produces
// exactly the objects this package's tests read, in the kustomization
// namespace, with the kustomization's image tags.
func TestK8sKustomizeBuild(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed; the manifests are checked structurally by the other TestK8s tests")
	}
	m := loadK8s(t)
	cmd := exec.Command(kubectl, "kustomize", repoPath(t, k8sDir))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v", err)
	}
	docs, err := yamlDocs(out)
	if err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for _, doc := range docs {
		var o struct {
			typeMeta `yaml:",inline"`
			Spec     struct {
				Template struct {
					Spec struct {
						Containers []struct {
							Image string `yaml:"image"`
						} `yaml:"containers"`
					} `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"spec"`
		}
		if err := yaml.Unmarshal(doc, &o); err != nil {
			t.Fatal(err)
		}
		got = append(got, o.Kind+"/"+o.Metadata.Namespace+"/"+o.Metadata.Name)
		for _, c := range o.Spec.Template.Spec.Containers {
			if why := imagePinned(c.Image); why != "" {
				t.Errorf("rendered %s %s: image %q not pinned: %s", o.Kind, o.Metadata.Name, c.Image, why)
			}
		}
	}
	for _, o := range m.Objects {
		ns := m.Kustomization.Namespace
		if o.Kind == "Namespace" {
			ns = ""
		}
		want = append(want, o.Kind+"/"+ns+"/"+o.Metadata.Name)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("kustomize renders %v, want %v", got, want)
	}
}
