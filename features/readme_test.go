package features_test

import (
	"os"
	"strings"
	"testing"

	"github.com/streamprofile/streamprofile/features"
)

// The README's feature table is the user-facing definition of every
// feature; it must list each one with the definition the code documents.
func TestREADMEFeatureTableMatchesDefs(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, d := range features.Defs {
		row := "| `" + d.Name + "` | " + strings.ReplaceAll(d.Def, "|", `\\|`) + " |"
		if !strings.Contains(readme, row) {
			t.Errorf("README.md lacks the row %q", row)
		}
	}
}
