package nn

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestArchDefaults(t *testing.T) {
	got := Arch{}.WithDefaults()
	want := Arch{
		TokenFields:  []string{"category", "brand", "term"},
		HashBuckets:  1024,
		EmbedDim:     8,
		Hidden:       []int{32, 16},
		Heads:        []string{"purchase_propensity", "repeat_purchase"},
		LearningRate: 0.01,
		Optimizer:    "adam",
		L2:           1e-5,
		BatchSize:    128,
		Seed:         1,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", got, want)
	}
	if err := (Arch{}).Validate(); err != nil {
		t.Errorf("the default architecture is invalid: %v", err)
	}
	a := Arch{Hidden: []int{4}}
	d := a.WithDefaults()
	d.Hidden[0] = 9
	if a.Hidden[0] != 4 {
		t.Error("WithDefaults shares slices with its receiver")
	}
}

func TestArchValidate(t *testing.T) {
	long := strings.Repeat("x", MaxNameLen+1)
	for _, tc := range []struct {
		name string
		arch Arch
		ok   bool
	}{
		{"defaults", Arch{}, true},
		{"numeric only names", Arch{NumericFeatures: []string{"a", "b"}}, true},
		{"sgd", Arch{Optimizer: "sgd"}, true},
		{"l2 disabled", Arch{L2: -1}, true},
		{"empty numeric name", Arch{NumericFeatures: []string{""}}, false},
		{"long name", Arch{NumericFeatures: []string{long}}, false},
		{"duplicate numeric", Arch{NumericFeatures: []string{"a", "a"}}, false},
		{"numeric shadows token field", Arch{NumericFeatures: []string{"brand"}}, false},
		{"duplicate head", Arch{Heads: []string{"p", "p"}}, false},
		{"negative buckets", Arch{HashBuckets: -1}, false},
		{"too many buckets", Arch{HashBuckets: MaxHashBuckets + 1}, false},
		{"zero-width hidden", Arch{Hidden: []int{8, 0}}, false},
		{"too many hidden layers", Arch{Hidden: make9(4)}, false},
		{"negative learning rate", Arch{LearningRate: -0.1}, false},
		{"unknown optimizer", Arch{Optimizer: "rmsprop"}, false},
		{"huge l2", Arch{L2: 2}, false},
		{"batch too large", Arch{BatchSize: MaxBatchSize + 1}, false},
		{"too many parameters", Arch{TokenFields: []string{"a", "b", "c", "d", "e", "f", "g", "h", "i"}, HashBuckets: MaxHashBuckets, EmbedDim: 4}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.arch.Validate()
			if tc.ok != (err == nil) {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errorsIs(err, ErrInvalidArch) {
				t.Errorf("error %v does not wrap ErrInvalidArch", err)
			}
			if _, nerr := NewNetwork(tc.arch); (nerr == nil) != tc.ok {
				t.Errorf("NewNetwork error %v, Validate %v", nerr, err)
			}
		})
	}
}

func make9(w int) []int {
	h := make([]int, MaxHiddenLayers+1)
	for i := range h {
		h[i] = w
	}
	return h
}

func TestArchConfigFormats(t *testing.T) {
	const y = `
numeric_features: [recency_days, frequency]
token_fields: [category]
hash_buckets: 256
embed_dim: 4
hidden: [8]
heads: [purchase_propensity]
learning_rate: 0.005
optimizer: sgd
l2: 0.001
batch_size: 32
seed: 9
`
	want := Arch{
		NumericFeatures: []string{"recency_days", "frequency"}, TokenFields: []string{"category"},
		HashBuckets: 256, EmbedDim: 4, Hidden: []int{8}, Heads: []string{"purchase_propensity"},
		LearningRate: 0.005, Optimizer: "sgd", L2: 0.001, BatchSize: 32, Seed: 9,
	}
	var fromYAML Arch
	if err := yaml.Unmarshal([]byte(y), &fromYAML); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromYAML, want) {
		t.Errorf("yaml: got %+v, want %+v", fromYAML, want)
	}
	j, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var fromJSON Arch
	if err := json.Unmarshal(j, &fromJSON); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromJSON, want) {
		t.Errorf("json round trip: got %+v, want %+v", fromJSON, want)
	}
}
