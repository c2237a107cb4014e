// Package schema holds the JSON Schemas (draft 2020-12) of the messages
// streamprofile exchanges with other systems, embedded so that they ship with
// the binary and can be served or checked offline.
//
//   - clickstream-v1.schema.json: a schema-1 clickstream event, the input
//     stream.Decoder accepts (see that file's description for the few checks
//     only the decoder can make).
//
// Later message contracts (segment changes, retargeting triggers) live beside
// it. Compile compiles one of them with format assertions on:
//
//	sch, err := schema.Compile(schema.ClickstreamV1)
//	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(msg))
//	err = sch.Validate(v)
//
// The schemas carry no $id: each is identified by its file name, and
// relative $refs between them resolve among the embedded files. Nothing is
// ever fetched over the network.
package schema
