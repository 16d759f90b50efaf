package main

import (
	"fmt"
	"slices"
	"strings"
)

// knownEnv lists every SIGNET_* variable signet reads: the config
// overrides and the ones read where they are used.
func knownEnv() []string {
	names := []string{"SIGNET_CONFIG", "SIGNET_KEK", "SIGNET_PKCS11_PIN", "SIGNET_CLIENT_ID", "SIGNET_CLIENT_SECRET"}
	for _, o := range envOverrides() {
		names = append(names, o.name)
	}
	return names
}

// unknownEnv returns a warning for each SIGNET_* variable in environ that
// signet does not read, naming the closest known one. A variable is only a
// warning, not an error as an unknown config field is: the environment is
// shared with other programs.
func unknownEnv(environ []string) []string {
	known := knownEnv()
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "SIGNET_") || slices.Contains(known, name) {
			continue
		}
		w := fmt.Sprintf("unknown environment variable %s is ignored", name)
		if s := closest(name, known); s != "" {
			w += fmt.Sprintf(": did you mean %s?", s)
		} else {
			w += "; signet reads " + strings.Join(slices.Sorted(slices.Values(known)), ", ")
		}
		out = append(out, w)
	}
	slices.Sort(out)
	return out
}

// closest returns the candidate nearest to s by edit distance, or "" when
// none is near enough to be a typo of it (at most 2 edits, or a third of
// its length for long names).
func closest(s string, candidates []string) string {
	best, bestD := "", max(2, len(s)/3)+1
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
