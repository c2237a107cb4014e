package main

import (
	"io"
	"testing"
)

// TestFlagSet: a flag counts as set when the command line gives it (in any
// of the flag package's spellings) or its STREAMPROFILE_* variable exists;
// a value that merely spells the flag's name does not set it.
func TestFlagSet(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  bool
		want bool
	}{
		{name: "absent", args: nil, want: false},
		{name: "double dash value", args: []string{"--users", "5"}, want: true},
		{name: "single dash equals", args: []string{"-users=5"}, want: true},
		{name: "another flag", args: []string{"--out", "x"}, want: false},
		{name: "value spelling the name", args: []string{"--out", "users"}, want: false},
		{name: "environment", env: true, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env {
				t.Setenv(envKey("users"), "7")
			}
			fs := newFlags("bench", io.Discard)
			fs.String("users", "", "")
			fs.String("out", "", "")
			if err := parseFlags(fs, tc.args); err != nil {
				t.Fatal(err)
			}
			if got := flagSet(fs, "users"); got != tc.want {
				t.Errorf("flagSet(%q, users) = %v, want %v", tc.args, got, tc.want)
			}
		})
	}
}
