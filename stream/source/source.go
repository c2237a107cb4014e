package source

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/streamprofile/streamprofile/data"
	"github.com/streamprofile/streamprofile/stream"
)

// Format names a dataset layout.
type Format string

// The formats a Reader understands.
const (
	// JSONL is one schema-1 JSON event per line. Blank lines are skipped.
	JSONL Format = "jsonl"
	// REES46 is the REES46 Open CDP e-commerce CSV, with the header
	// event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session.
	REES46 Format = "rees46"
	// CDNOW is the CDNOW transaction log, either the master layout (header
	// line, then "customer_id date cds dollars") or the sample layout (no
	// header, "master_id sample_id date cds dollars").
	CDNOW Format = "cdnow"
)

// EmbeddedPrefix marks a path given to Open as the name of a dataset
// embedded in package data, e.g. "embedded:rees46-2019-oct-head.csv.gz".
const EmbeddedPrefix = "embedded:"

// MaxLineBytes is the longest line a jsonl or cdnow Reader keeps. A longer
// line is reported as a *LineError wrapping ErrLineTooLong and skipped.
// Lines between stream.DefaultLimits.MaxEventBytes and MaxLineBytes are
// returned with their Value (and a too_large decode error), so oversized
// records can be published on purpose.
const MaxLineBytes = 1 << 20

// ParseFormat returns the Format named s ("jsonl", "rees46" or "cdnow",
// case-insensitive).
func ParseFormat(s string) (Format, error) {
	if f := Format(strings.ToLower(strings.TrimSpace(s))); f.valid() {
		return f, nil
	}
	return "", fmt.Errorf("%w %q (want jsonl, rees46 or cdnow)", ErrUnknownFormat, s)
}

func (f Format) valid() bool { return f == JSONL || f == REES46 || f == CDNOW }

// Record is one event read from a dataset.
type Record struct {
	// Event is the decoded, validated event: what stream.Decoder.Decode
	// returns for Value.
	Event stream.Event
	// Value is the schema-1 JSON message value: for jsonl the line as it
	// is, without its LF or CRLF terminator; for the CSV formats the output
	// of stream.Encode.
	Value []byte
	// Line is the 1-based physical line the event came from.
	Line int
}

// Reader yields the events of one dataset in file order.
type Reader interface {
	// Next returns the next record, or io.EOF after the last one. A line
	// that is not a valid event yields a *LineError and the reader moves on
	// to the next line on the following call; for jsonl the returned Record
	// then still carries the bad line's Value and Line (its Event is zero)
	// so that it can be published as it is. Any other error ends the
	// reader: every later call returns it again.
	Next() (Record, error)
}

// NewReader returns a Reader of format over r, which must yield plain text
// (see Open for gzip). name is the file's base name; the CSV formats derive
// event ids from it (a ".gz" suffix and any directory are removed first).
// The events are validated with stream.NewDecoder(stream.Limits{}, nil), so
// the default limits and the wall clock apply.
func NewReader(format Format, name string, r io.Reader) (Reader, error) {
	if r == nil {
		return nil, errors.New("source: nil io.Reader")
	}
	base := strings.TrimSuffix(filepath.Base(name), ".gz")
	dec := stream.NewDecoder(stream.Limits{}, nil)
	switch format {
	case JSONL:
		return &jsonlReader{lines: newLineReader(r), dec: dec}, nil
	case REES46, CDNOW:
		if name == "" || base == "." || base == "/" {
			return nil, fmt.Errorf("source: %s reader needs a file name for event ids", format)
		}
		if format == REES46 {
			return newREES46Reader(r, base, dec), nil
		}
		return &cdnowReader{lines: newLineReader(r), name: base, dec: dec}, nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownFormat, string(format))
}

// Open opens path and returns a Reader of format over it, and the Closer that
// releases the file. path is a file path (a ".gz" file is gunzipped) or
// EmbeddedPrefix followed by one of data.Names().
func Open(format Format, path string) (Reader, io.Closer, error) {
	if !format.valid() {
		return nil, nil, fmt.Errorf("%w %q", ErrUnknownFormat, string(format))
	}
	var (
		rc   io.ReadCloser
		name string
	)
	if emb, ok := strings.CutPrefix(path, EmbeddedPrefix); ok {
		f, err := data.Open(emb)
		if err != nil {
			return nil, nil, fmt.Errorf("source: %w", err)
		}
		rc, name = f, emb
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, nil, fmt.Errorf("source: %w", err)
		}
		rc, name = f, filepath.Base(path)
		if strings.HasSuffix(path, ".gz") {
			zr, err := gzip.NewReader(f)
			if err != nil {
				_ = f.Close()
				return nil, nil, fmt.Errorf("source: open %s: %w", path, err)
			}
			rc = &gzipFile{Reader: zr, f: f}
		}
	}
	rd, err := NewReader(format, name, rc)
	if err != nil {
		_ = rc.Close()
		return nil, nil, err
	}
	return rd, rc, nil
}

// ReadAll opens path as Open does and returns every record, in file
// order. Any error, a line that is not a valid event (*LineError)
// included, ends it: it is for inputs known to be clean, such as the
// bundled samples.
func ReadAll(format Format, path string) ([]Record, error) {
	r, c, err := Open(format, path)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var out []Record
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
}

// gzipFile closes both the decompressor and the file.
type gzipFile struct {
	*gzip.Reader
	f *os.File
}

func (g *gzipFile) Close() error {
	err := g.Reader.Close()
	if ferr := g.f.Close(); err == nil {
		err = ferr
	}
	return err
}

// encodeAndDecode renders ev as a message value and decodes it back, so that
// the Record holds exactly what a consumer will see.
func encodeAndDecode(dec *stream.Decoder, ev *stream.Event, line int) (Record, error) {
	v, err := stream.Encode(ev)
	if err != nil {
		return Record{}, &LineError{Line: line, Err: err}
	}
	got, err := dec.Decode(v)
	if err != nil {
		return Record{}, &LineError{Line: line, Err: err}
	}
	return Record{Event: got, Value: v, Line: line}, nil
}

func eventID(name string, line int) string { return fmt.Sprintf("%s:L%d", name, line) }
