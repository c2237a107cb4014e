package data_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/streamprofile/streamprofile/data"
)

// provenance is what README.md promises for each dataset: the sha256 of the
// plain text Open yields and its line count (header included).
var provenance = []struct {
	name       string
	storedSHA  string // sha256 of the embedded bytes
	plainSHA   string // sha256 of what Open yields
	lines      int    // physical lines, header included
	dataRows   int
	headerLine string // "" when the file has no header
}{
	{
		name:       data.REES46Sample,
		storedSHA:  "2ad0ca4972f9083bc491c6d6bc2972660540e6e30003c7f029f39dafb5152bc0",
		plainSHA:   "bfa48d18457853e8de9c7bf491bc95aa795bdb0d55e87731a1e5d1e2a0325690",
		lines:      17435,
		dataRows:   17434,
		headerLine: "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session",
	},
	{
		name:       data.CDNOWMaster,
		storedSHA:  "0da3cbb18d20183f03baf07a2addee7b5445a6e94f962e092f24e174b208a358",
		plainSHA:   "0da3cbb18d20183f03baf07a2addee7b5445a6e94f962e092f24e174b208a358",
		lines:      69660,
		dataRows:   69659,
		headerLine: " customer_id  date number_of_cds  dollar_value",
	},
	{
		name:      data.CDNOWSample,
		storedSHA: "e7de98a2448bda51026ac1b1115009d83d882a93a3beb6f8f1594611a0ebc795",
		plainSHA:  "e7de98a2448bda51026ac1b1115009d83d882a93a3beb6f8f1594611a0ebc795",
		lines:     6919,
		dataRows:  6919,
	},
}

func TestNamesListsEveryDataset(t *testing.T) {
	want := []string{data.CDNOWMaster, data.CDNOWSample, data.REES46Sample}
	slices.Sort(want)
	if got := data.Names(); !slices.Equal(got, want) {
		t.Fatalf("Names() = %q, want %q", got, want)
	}
}

func TestEmbeddedFilesMatchREADME(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range provenance {
		t.Run(p.name, func(t *testing.T) {
			for _, sum := range []string{p.storedSHA, p.plainSHA} {
				if !strings.Contains(string(readme), sum) {
					t.Errorf("README.md does not state checksum %s", sum)
				}
			}
			stored, err := os.ReadFile(p.name)
			if err != nil {
				t.Fatal(err)
			}
			if got := sha256Hex(stored); got != p.storedSHA {
				t.Errorf("stored sha256 = %s, want %s", got, p.storedSHA)
			}

			rc, err := data.Open(p.name)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			h := sha256.New()
			sc := bufio.NewScanner(io.TeeReader(rc, h))
			sc.Buffer(make([]byte, 0, 4096), 1<<20)
			lines, first := 0, ""
			for sc.Scan() {
				if lines == 0 {
					first = sc.Text()
				}
				lines++
			}
			if err := sc.Err(); err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(h.Sum(nil)); got != p.plainSHA {
				t.Errorf("Open yields sha256 %s, want %s", got, p.plainSHA)
			}
			if lines != p.lines {
				t.Errorf("%d lines, want %d", lines, p.lines)
			}
			if p.headerLine != "" && first != p.headerLine {
				t.Errorf("header %q, want %q", first, p.headerLine)
			}
			if p.headerLine == "" && len(strings.Fields(first)) != 5 {
				t.Errorf("first line %q is not a 5-field data row", first)
			}
		})
	}
}

func TestOpenRejectsUnknownNames(t *testing.T) {
	for _, name := range []string{"", "nope.csv", ".", "../data/doc.go", "doc.go", "README.md", "sub/" + data.CDNOWMaster} {
		rc, err := data.Open(name)
		if err == nil {
			rc.Close()
			t.Errorf("Open(%q) succeeded", name)
			continue
		}
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open(%q) = %v, want an error wrapping fs.ErrNotExist", name, err)
		}
	}
}

func TestOpenIsRepeatable(t *testing.T) {
	// Two concurrent readers of the same dataset see the same bytes.
	a, err := data.Open(data.REES46Sample)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := data.Open(data.REES46Sample)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ha, hb := sha256.New(), sha256.New()
	if _, err := io.Copy(ha, a); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(hb, b); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ha.Sum(nil), hb.Sum(nil)) {
		t.Fatal("two opens of the same dataset differ")
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
