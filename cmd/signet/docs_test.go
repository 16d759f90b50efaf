package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestDocsCommandsParse keeps every command in README.md and docs/*.md
// pastable: each `signet ...` (or `go run ./cmd/signet ...`) line of a shell
// block parses with the real CLI (command, subcommand, flags), and no line
// has a `[--flag]` placeholder, an `a | b | c` list of alternatives that the
// shell would run as a pipeline, or a fuzz run without -fuzztime.
func TestDocsCommandsParse(t *testing.T) {
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{"../../README.md"}, files...)
	checked := 0
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range shellCommands(string(text)) {
			probs, n := checkDocCommand(c.text)
			checked += n
			for _, p := range probs {
				t.Errorf("%s:%d: %s\n\t%s", strings.TrimPrefix(f, "../../"), c.line, p, c.text)
			}
		}
	}
	// The README alone has more than twenty signet lines: finding none
	// means the extraction broke, not that the docs are fine.
	if checked < 20 {
		t.Errorf("checked %d signet command lines; the block extraction is broken", checked)
	}
}

// TestDocCommandChecker shows that the checker catches each kind of
// mistake it is there for, and passes the forms the docs use.
func TestDocCommandChecker(t *testing.T) {
	bad := []string{
		"signet clients list [--json]",
		"signet keys rotat --data-dir ./data",
		"signet keys list --bogus",
		"signet users list | set-password USER | logout USER",
		"signet frobnicate",
		"go run ./cmd/signet serve --no-such-flag",
		"go test -run '^$' -fuzz FuzzTokenEndpoint ./authority",
		"signet backup --out",
	}
	for _, c := range bad {
		if probs, _ := checkDocCommand(c); len(probs) == 0 {
			t.Errorf("no problem found in %q", c)
		}
	}
	good := []string{
		`signet clients create --id billing --scope "invoices:read invoices:write" --audience https://billing.internal`,
		`printf '%s' "$PASSWORD" | signet users create --username alice   # a comment | with a bar`,
		`SIGNET_CLIENT_ID=admin SIGNET_CLIENT_SECRET="$ADMIN_SECRET" signet keys list --server http://localhost:8080`,
		`signet keys revoke KID --data-dir ./data`,
		`signet clients list --json | jq -r '.[].id'`,
		`go test -run '^$' -fuzz FuzzTokenEndpoint -fuzztime 60s ./authority`,
		`TOKEN=$(curl -s -d a=b http://x/token | sed 's/a/b/')`,
	}
	for _, c := range good {
		if probs, _ := checkDocCommand(c); len(probs) != 0 {
			t.Errorf("%q: %v", c, probs)
		}
	}
}

type docCommand struct {
	line int
	text string
}

// shellCommands returns the command lines of a Markdown text's shell
// blocks (sh, bash, shell: every line; console: lines starting with "$ ";
// plain blocks: lines starting with "signet " or "$ signet"), with
// backslash continuations joined.
func shellCommands(md string) []docCommand {
	var out []docCommand
	lang, in := "", false
	var pending strings.Builder
	start := 0
	for i, line := range strings.Split(md, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") {
			in = !in
			lang = strings.TrimSpace(strings.TrimPrefix(trimmed, "```"))
			pending.Reset()
			continue
		}
		if !in {
			continue
		}
		if pending.Len() == 0 {
			start = i + 1
			switch lang {
			case "sh", "bash", "shell":
				line = strings.TrimPrefix(line, "$ ")
			case "console":
				if !strings.HasPrefix(line, "$ ") {
					continue
				}
				line = strings.TrimPrefix(line, "$ ")
			case "":
				if !strings.HasPrefix(line, "signet ") && !strings.HasPrefix(line, "$ signet ") {
					continue
				}
				line = strings.TrimPrefix(line, "$ ")
			default:
				continue
			}
		}
		if strings.HasSuffix(line, "\\") {
			pending.WriteString(strings.TrimSuffix(line, "\\"))
			continue
		}
		pending.WriteString(line)
		if s := strings.TrimSpace(pending.String()); s != "" {
			out = append(out, docCommand{start, s})
		}
		pending.Reset()
	}
	return out
}

// shellWord is one word of a command line, or an operator (| && || ; &).
type shellWord struct {
	text     string
	operator bool
	// placeholder: the word starts with an unquoted "[", as in [--json].
	placeholder bool
}

// shellWords splits a command line as a POSIX shell would, far enough for
// the checks: quotes, backslashes, $(...) and backquotes, comments, and the
// operators that separate commands.
func shellWords(line string) ([]shellWord, error) {
	var words []shellWord
	var cur strings.Builder
	inWord, placeholder := false, false
	flush := func() {
		if inWord {
			words = append(words, shellWord{text: cur.String(), placeholder: placeholder})
		}
		cur.Reset()
		inWord, placeholder = false, false
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			flush()
		case c == '#' && !inWord:
			return words, nil
		case c == '|' || c == '&' || c == ';':
			flush()
			op := string(c)
			if i+1 < len(line) && (line[i+1] == '|' || line[i+1] == '&') && line[i+1] == c {
				op += string(c)
				i++
			}
			words = append(words, shellWord{text: op, operator: true})
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated single quote")
			}
			cur.WriteString(line[i+1 : i+1+j])
			inWord = true
			i += j + 1
		case c == '"':
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) {
					i++
				}
				cur.WriteByte(line[i])
			}
			if i >= len(line) {
				return nil, fmt.Errorf("unterminated double quote")
			}
			inWord = true
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
			inWord = true
		case c == '$' && i+1 < len(line) && line[i+1] == '(':
			// A command substitution is one opaque piece of the word.
			depth, j := 0, i+1
			for ; j < len(line); j++ {
				switch line[j] {
				case '(':
					depth++
				case ')':
					depth--
				case '\'':
					if k := strings.IndexByte(line[j+1:], '\''); k >= 0 {
						j += k + 1
					}
				}
				if depth == 0 {
					break
				}
			}
			if j >= len(line) {
				return nil, fmt.Errorf("unterminated $(")
			}
			cur.WriteString(line[i : j+1])
			inWord = true
			i = j
		case c == '`':
			j := strings.IndexByte(line[i+1:], '`')
			if j < 0 {
				return nil, fmt.Errorf("unterminated backquote")
			}
			cur.WriteString(line[i : i+j+2])
			inWord = true
			i += j + 1
		default:
			if c == '[' && !inWord {
				placeholder = true
			}
			cur.WriteByte(c)
			inWord = true
		}
	}
	flush()
	return words, nil
}

// pipedCommands are the programs a documented pipeline may feed: a word
// after "|" that is none of them is an alternative written as a pipe.
var pipedCommands = []string{"signet", "jq", "grep", "sed", "awk", "head", "tail", "sort", "uniq", "wc", "tee",
	"base64", "xargs", "cut", "tr", "less", "cat", "sha256sum", "gzip", "curl", "docker", "kubectl"}

// checkDocCommand returns what is wrong with one documented command line,
// and how many signet command lines it checked with the CLI's parser.
func checkDocCommand(line string) (problems []string, signetLines int) {
	words, err := shellWords(line)
	if err != nil {
		return []string{err.Error()}, 0
	}
	// Split into simple commands at the operators.
	var cmds [][]shellWord
	var afterPipe []bool
	cur, piped := []shellWord{}, false
	for _, w := range append(words, shellWord{text: ";", operator: true}) {
		if !w.operator {
			cur = append(cur, w)
			continue
		}
		if len(cur) > 0 {
			cmds = append(cmds, cur)
			afterPipe = append(afterPipe, piped)
		}
		cur, piped = []shellWord{}, w.text == "|"
	}
	for i, cmd := range cmds {
		var args []string
		for j := 0; j < len(cmd); j++ {
			w := cmd[j]
			// A redirection is the shell's, not the command's.
			if w.text == ">" || w.text == ">>" || w.text == "2>" {
				j++
				continue
			}
			if strings.HasPrefix(w.text, ">") || strings.HasPrefix(w.text, "2>") {
				continue
			}
			if w.placeholder {
				problems = append(problems, fmt.Sprintf("%q is a placeholder, not an argument: write the command out, or say it in prose", w.text))
			}
			args = append(args, w.text)
		}
		// Leading VAR=value assignments are not the command.
		for len(args) > 0 && strings.Contains(args[0], "=") && !strings.HasPrefix(args[0], "-") {
			args = args[1:]
		}
		if len(args) == 0 {
			continue
		}
		if afterPipe[i] && !slices.Contains(pipedCommands, args[0]) {
			problems = append(problems, fmt.Sprintf("%q after a | is no command: the shell runs alternatives written as a | b as a pipeline", args[0]))
			continue
		}
		var cli []string
		switch {
		case args[0] == "signet":
			cli = args[1:]
		case len(args) >= 3 && args[0] == "go" && args[1] == "run" && args[2] == "./cmd/signet":
			cli = args[3:]
		case args[0] == "go" && len(args) > 1 && args[1] == "test":
			fuzz := slices.ContainsFunc(args, func(a string) bool { return a == "-fuzz" || strings.HasPrefix(a, "-fuzz=") })
			fuzztime := slices.ContainsFunc(args, func(a string) bool { return a == "-fuzztime" || strings.HasPrefix(a, "-fuzztime=") })
			if fuzz && !fuzztime {
				problems = append(problems, "go test -fuzz without -fuzztime runs until interrupted")
			}
			continue
		default:
			continue
		}
		signetLines++
		var stderr bytes.Buffer
		if code := parseOnly(cli, &stderr); code != 0 {
			problems = append(problems, fmt.Sprintf("signet refuses it (exit %d): %s", code, strings.TrimSpace(firstLine(stderr.String()))))
		}
	}
	return problems, signetLines
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
