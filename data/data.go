package data

import (
	"compress/gzip"
	"embed"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
)

// The names of the embedded datasets. See README.md for their provenance.
const (
	// REES46Sample is the first 17,434 rows of the REES46 Open CDP
	// "eCommerce behavior data from multi category store", October 2019
	// (CSV with header, gzip-compressed).
	REES46Sample = "rees46-2019-oct-head.csv.gz"
	// CDNOWMaster is the CDNOW master transaction log (69,659 purchases by
	// 23,570 customers, whitespace-separated with a header line).
	CDNOWMaster = "cdnow-master.txt"
	// CDNOWSample is the 2,357-customer 1/10th sample of CDNOWMaster
	// (6,919 purchases, whitespace-separated, no header).
	CDNOWSample = "cdnow-sample.txt"
)

//go:embed rees46-2019-oct-head.csv.gz cdnow-master.txt cdnow-sample.txt
var files embed.FS

// Names returns the names of the embedded datasets in lexical order.
func Names() []string {
	entries, err := files.ReadDir(".")
	if err != nil { // cannot happen for an embed.FS root
		return nil
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

// Open opens the embedded dataset name (one of Names). A name ending in
// ".gz" is decompressed transparently, so the reader always yields the
// dataset's plain text. The error for an unknown name wraps fs.ErrNotExist.
func Open(name string) (io.ReadCloser, error) {
	if !slices.Contains(Names(), name) {
		return nil, fmt.Errorf("data: open %q: %w", name, fs.ErrNotExist)
	}
	f, err := files.Open(name)
	if err != nil {
		return nil, fmt.Errorf("data: open %q: %w", name, err)
	}
	if !strings.HasSuffix(name, ".gz") {
		return f, nil
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("data: open %q: %w", name, err)
	}
	return &gzipFile{Reader: zr, f: f}, nil
}

// gzipFile closes both the decompressor and the embedded file.
type gzipFile struct {
	*gzip.Reader
	f fs.File
}

func (g *gzipFile) Close() error {
	err := g.Reader.Close()
	if ferr := g.f.Close(); err == nil {
		err = ferr
	}
	return err
}
