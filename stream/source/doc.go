// Package source reads clickstream datasets and yields schema-1
// stream.Event values in file order, each with its encoded message value.
// It feeds the replay producer, demos, benchmarks and tests.
//
// Three formats are understood (see Format):
//
//   - jsonl: one schema-1 JSON event per line, as published to the
//     clickstream topic. The record's Value is the line's bytes unchanged,
//     so bad lines can be published as they are to exercise the DLQ.
//   - rees46: the REES46 Open CDP "eCommerce behavior data from multi
//     category store" CSV (data.REES46Sample).
//   - cdnow: the CDNOW master log and its 1/10th sample (data.CDNOWMaster,
//     data.CDNOWSample); every row is a purchase.
//
// Every Record a Reader returns has been through stream.Decoder.Decode: its
// Event is exactly what a consumer decoding its Value sees. A line that
// cannot be turned into a valid event is reported as a *LineError naming the
// line; the reader stays usable and the next call to Next moves on to the
// next line, so callers choose whether one bad line ends the run.
//
// # Event ids
//
// For the CSV formats the event id is "<file>:L<line>": the file's base name
// with any ".gz" suffix removed and the 1-based physical line number (the
// header, when there is one, is line 1). Replaying a file twice therefore
// produces the same ids, which the consumer deduplicates, while identical
// lines stay distinct events; and the same data compressed or not gets the
// same ids.
//
// # Money
//
// Prices are parsed as exact decimals into integer micros (millionths of a
// dollar) and Price is the float64 nearest to that decimal. For CDNOW a row
// holds a total (dollar value D for q CDs); the event carries quantity q and
// unit price D/q rounded half away from zero to 6 decimals, so
// price×quantity can differ from D by less than 1e-6·q dollars (at most
// q/2 micros). Revenue sums use Event.AmountMicros (PriceMicros × quantity in
// integer micros), so they are exact and order-independent, but they are
// sums of those rounded unit prices, not of the original dollar values.
package source
