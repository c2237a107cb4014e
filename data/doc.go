// Package data embeds the real public e-commerce datasets that streamprofile
// ships with, so that tests, benchmarks, demos and the replay producer run
// without network access.
//
// The files are stored byte for byte as described in README.md (origin,
// upstream dataset, changes, licence and attribution, sha256 checksums, row
// counts). Read them with Open, which gunzips .gz files transparently:
//
//	rc, err := data.Open(data.REES46Sample)
//	if err != nil { ... }
//	defer rc.Close()
//
// Package stream/source turns these files into stream.Event values.
package data
