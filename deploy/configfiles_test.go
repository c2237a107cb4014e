package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/streamprofile/streamprofile/api"
	"github.com/streamprofile/streamprofile/privacy"
	"github.com/streamprofile/streamprofile/sink/segment"
)

// devToken is the development token of deploy/config/dev/tokens.yaml,
// documented in deploy/README.md.
const devToken = "dev-only-insecure-token"

// TestSegmentsFiles: deploy/config/segments.yaml and its copy in the
// streamprofile-config ConfigMap are catalogues the score role loads, as
// checked by its own parser (names, rules, kinds), and define the same
// segments.
func TestSegmentsFiles(t *testing.T) {
	cm, ok := loadK8s(t).ConfigMaps["streamprofile-config"]
	if !ok {
		t.Fatal("no ConfigMap streamprofile-config")
	}
	var digests []string
	for _, f := range []struct{ name, data string }{
		{"deploy/config/segments.yaml", string(readRepoFile(t, "deploy/config/segments.yaml"))},
		{k8sDir + "/configmap.yaml streamprofile-config segments.yaml", cm.Data["segments.yaml"]},
	} {
		c, err := segment.Parse(f.name, []byte(f.data), segment.Config{})
		if err != nil {
			t.Errorf("%s does not load in the score role:\n%v", f.name, err)
			continue
		}
		if c.Len() == 0 {
			t.Errorf("%s defines no segment", f.name)
		}
		digests = append(digests, c.Digest())
	}
	if len(digests) == 2 && digests[0] != digests[1] {
		t.Error("the ConfigMap's segments.yaml defines other segments than deploy/config/segments.yaml")
	}
}

// TestDevSecrets: the development secrets that docker-compose.yml mounts
// load with the loaders of serve and ingest: a token file whose entry
// accepts the documented development token (stored as its SHA-256, never
// in clear), and a pseudonym key file with a key of at least
// privacy.MinSecretLen bytes.
func TestDevSecrets(t *testing.T) {
	specs, err := api.LoadTokenFile(repoPath(t, "deploy/config/dev/tokens.yaml"))
	if err != nil {
		t.Fatalf("tokens.yaml: %v", err)
	}
	sum := sha256.Sum256([]byte(devToken))
	if len(specs) != 1 || specs[0].SHA256 != hex.EncodeToString(sum[:]) || specs[0].SHA256 != api.HashToken(devToken) {
		t.Errorf("tokens.yaml holds %d tokens; want one, accepting %q", len(specs), devToken)
	}
	if strings.Contains(string(readRepoFile(t, "deploy/config/dev/tokens.yaml")), devToken+"\n") {
		t.Error("tokens.yaml holds the token in clear")
	}
	keys, err := privacy.LoadKeyFile(repoPath(t, "deploy/config/dev/pseudonym.key"))
	if err != nil {
		t.Fatalf("pseudonym.key: %v", err)
	}
	if len(keys) == 0 || len(keys[0].Secret) < privacy.MinSecretLen {
		t.Errorf("pseudonym.key: %v", keys)
	}
}

// TestSecretPlaceholders: the placeholder Secret of deploy/k8s has the
// formats serve and ingest load (so replacing a value keeps the shape),
// and its placeholders cannot be used: the token digest has no known
// token, and the key id names the placeholder in every pseudonym.
func TestSecretPlaceholders(t *testing.T) {
	s, ok := loadK8s(t).Secrets["streamprofile-secrets"]
	if !ok {
		t.Fatal("no Secret streamprofile-secrets")
	}
	dir := t.TempDir()
	write := func(key string) string {
		v, ok := s.StringData[key]
		if !ok {
			t.Fatalf("Secret streamprofile-secrets has no %s", key)
		}
		p := filepath.Join(dir, key)
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	specs, err := api.LoadTokenFile(write("tokens.yaml"))
	if err != nil {
		t.Fatalf("Secret tokens.yaml: %v", err)
	}
	for _, sp := range specs {
		if sp.SHA256 != strings.Repeat("0", 64) {
			t.Errorf("Secret tokens.yaml: token %s has a digest someone may know the token of; use 64 zeros as the placeholder", sp.Name)
		}
	}
	keys, err := privacy.LoadKeyFile(write("pseudonym.key"))
	if err != nil {
		t.Fatalf("Secret pseudonym.key: %v", err)
	}
	if len(keys) != 1 || keys[0].ID != "REPLACE_ME" {
		t.Errorf("Secret pseudonym.key: %v; want one key with id REPLACE_ME", keys)
	}
}

// secretItemAt returns the Secret and key that provide file p in
// container c of a pod with volumes vols, if a Secret volume does.
func secretItemAt(c *k8sContainer, vols []k8sVolume, p string) (secret, key string, ok bool) {
	dir, file := path.Split(p)
	for _, vm := range c.VolumeMounts {
		if strings.TrimSuffix(vm.MountPath, "/")+"/" != dir {
			continue
		}
		for _, v := range vols {
			if v.Name != vm.Name || v.Secret == nil {
				continue
			}
			for _, it := range v.Secret.Items {
				if it.Path == file {
					return v.Secret.SecretName, it.Key, true
				}
			}
			if len(v.Secret.Items) == 0 {
				return v.Secret.SecretName, file, true
			}
		}
	}
	return "", "", false
}

// TestServeReadsWhatIngestWrites: in docker-compose.yml and deploy/k8s,
// ingest and serve read the same pseudonym key (ingest writes pseudonyms,
// serve finds profiles by them), serve gets a token file and the ingest
// consumer group (whose checkpoints drive --clock=stream), and the files
// compose mounts are the ones the tests above load.
func TestServeReadsWhatIngestWrites(t *testing.T) {
	c := loadCompose(t)
	ingest, serve, score := c.Services["ingest"], c.Services["serve"], c.Services["score"]
	keyIn, keyServe := ingest.Environment["STREAMPROFILE_PSEUDONYM_KEY_FILE"], serve.Environment["STREAMPROFILE_PSEUDONYM_KEY_FILE"]
	hostIn, okIn := ingest.hostPath(keyIn)
	hostServe, okServe := serve.hostPath(keyServe)
	if keyIn == "" || !okIn || !okServe || hostIn != hostServe || hostIn != "deploy/config/dev/pseudonym.key" {
		t.Errorf("compose: pseudonym key of ingest %q (from %q), of serve %q (from %q); want both from deploy/config/dev/pseudonym.key",
			keyIn, hostIn, keyServe, hostServe)
	}
	if h, ok := serve.hostPath(serve.Environment["STREAMPROFILE_TOKENS_FILE"]); !ok || h != "deploy/config/dev/tokens.yaml" {
		t.Errorf("compose: serve's token file comes from %q, want deploy/config/dev/tokens.yaml", h)
	}
	if h, ok := score.hostPath(score.Environment["STREAMPROFILE_SEGMENTS"]); !ok || h != "deploy/config/segments.yaml" {
		t.Errorf("compose: score's segments come from %q, want deploy/config/segments.yaml", h)
	}
	if g := serve.Environment["STREAMPROFILE_GROUP"]; g != ingest.Environment["STREAMPROFILE_GROUP"] {
		t.Errorf("compose: serve --group %q, ingest's group %q", g, ingest.Environment["STREAMPROFILE_GROUP"])
	}
	if clk := serve.Environment["STREAMPROFILE_CLOCK"]; clk != "stream" {
		t.Errorf("compose: serve --clock %q; the replayed sample is from 2019, want stream", clk)
	}

	m := loadK8s(t)
	pod := func(name string) (*k8sContainer, []k8sVolume) {
		spec := &m.Deployments[name].Spec.Template.Spec
		return &spec.Containers[0], spec.Volumes
	}
	ic, iv := pod("ingest")
	sc, sv := pod("serve")
	fIn, _ := m.flagValue(ic, "pseudonym-key-file")
	fServe, _ := m.flagValue(sc, "pseudonym-key-file")
	secIn, keyOfIn, okIn := secretItemAt(ic, iv, fIn)
	secServe, keyOfServe, okServe := secretItemAt(sc, sv, fServe)
	if fIn == "" || !okIn || !okServe || secIn != secServe || keyOfIn != keyOfServe {
		t.Errorf("k8s: pseudonym key of ingest %q (Secret %s key %s), of serve %q (Secret %s key %s); want the same Secret key",
			fIn, secIn, keyOfIn, fServe, secServe, keyOfServe)
	}
	if f, _ := m.flagValue(sc, "tokens-file"); f == "" {
		t.Error("k8s: serve has no --tokens-file")
	}
	gIn, _ := m.flagValue(ic, "group")
	gServe, _ := m.flagValue(sc, "group")
	if gServe != gIn {
		t.Errorf("k8s: serve --group %q, ingest --group %q", gServe, gIn)
	}
	if clk, _ := m.flagValue(sc, "clock"); clk != "wall" && clk != "stream" {
		t.Errorf("k8s: serve --clock %q, want wall or stream", clk)
	}
}
