package schema

// File names of the schemas of the score role's outputs (package
// sink/scorer).
const (
	// SegmentChangesV1 is the schema of a message of topic
	// segment-changes: a user entered or left a segment.
	SegmentChangesV1 = "segment-changes-v1.schema.json"
	// RetargetV1 is the schema of a message of topic retarget: a
	// retargeting trigger with recommendations.
	RetargetV1 = "retarget-v1.schema.json"
)
