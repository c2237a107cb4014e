package source

import (
	"bytes"
	"errors"

	"github.com/streamprofile/streamprofile/stream"
)

// jsonlReader reads one schema-1 JSON event per line.
type jsonlReader struct {
	lines *lineReader
	dec   *stream.Decoder
}

func (r *jsonlReader) Next() (Record, error) {
	for {
		line, n, err := r.lines.next()
		if err != nil {
			var le *LineError
			if errors.As(err, &le) {
				return Record{Line: n}, err
			}
			return Record{}, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		value := bytes.Clone(line)
		ev, err := r.dec.Decode(value)
		if err != nil {
			return Record{Value: value, Line: n}, &LineError{Line: n, Err: err}
		}
		return Record{Event: ev, Value: value, Line: n}, nil
	}
}
