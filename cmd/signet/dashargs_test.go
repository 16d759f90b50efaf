package main

import (
	"flag"
	"io"
	"slices"
	"testing"
)

// TestParseFlags_DashArgument: a kid (base64url) may start with "-"; it is
// an argument wherever it stands, while a mistyped flag is still an error.
func TestParseFlags_DashArgument(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    []string
		dataDir string
		bad     bool
	}{
		{[]string{"-Abc_12xyz"}, []string{"-Abc_12xyz"}, "", false},
		{[]string{"--data-dir", "d", "-Abc_12xyz"}, []string{"-Abc_12xyz"}, "d", false},
		{[]string{"-x9Q", "--data-dir=d"}, []string{"-x9Q"}, "d", false},
		{[]string{"one", "-_two", "three"}, []string{"one", "-_two", "three"}, "", false},
		{[]string{"--", "-abc"}, []string{"-abc"}, "", false},
		{[]string{"--data-dri", "d"}, nil, "", true},
		{[]string{"-forse"}, nil, "", true},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		dir := fs.String("data-dir", "", "")
		err := parseFlagsOnly(fs, tc.args)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: parsed, want an error", tc.args)
			}
			continue
		}
		if err != nil || !slices.Equal(fs.Args(), tc.want) || *dir != tc.dataDir {
			t.Errorf("%q: args %q data-dir %q err %v; want %q %q", tc.args, fs.Args(), *dir, err, tc.want, tc.dataDir)
		}
	}
}
