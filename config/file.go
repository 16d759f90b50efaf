package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// LoadFile decodes the YAML file at path over c and returns every problem
// in it: unknown fields (with the field probably meant) and values of the
// wrong type. Values are not validated here (Validate does that).
func LoadFile(c *Config, path string) error {
	fieldErrs, err := decodeFile(c, path)
	if err != nil {
		return err
	}
	return errors.Join(fieldErrs...)
}

// decodeFile returns a file that cannot be read or parsed as err, and the
// problems of single fields, after which the rest of the file still
// applies, as fieldErrs.
func decodeFile(c *Config, path string) (fieldErrs []error, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	var root yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(b)).Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil // an empty file is the defaults
		}
		return nil, fmt.Errorf("config %s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	fieldAt := map[int]string{}
	for _, u := range unknownFields(&root, reflect.TypeOf(Config{}), "", fieldAt) {
		fieldErrs = append(fieldErrs, fmt.Errorf("config %s line %d: %s", path, u.line, u.message()))
	}
	// Unknown fields were reported above with their full names; the decoder
	// skips them and reports values of the wrong type, one line each.
	if err := root.Decode(c); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
		for _, e := range te.Errors {
			fieldErrs = append(fieldErrs, fmt.Errorf("config %s %s", path, typeError(e, fieldAt)))
		}
	}
	return fieldErrs, nil
}

// unknownField is a key in the file that no field of the configuration has.
type unknownField struct {
	line     int
	parent   string // dotted path of the section, "" at the top
	name     string
	siblings []string
}

func (u unknownField) message() string {
	full := u.name
	if u.parent != "" {
		full = u.parent + "." + u.name
	}
	msg := fmt.Sprintf("unknown field %q", full)
	if s := suggestField(u.name, u.siblings); s != "" {
		msg += fmt.Sprintf(": did you mean %q?", s)
	} else if u.parent != "" {
		msg += fmt.Sprintf(": %s has %s", u.parent, strings.Join(u.siblings, ", "))
	}
	return msg + " (config.example.yaml lists every field)"
}

// spelledOut writes out the words field names abbreviate, so that a name
// typed in full ("address", or misspelt "adress") still finds its field.
var spelledOut = strings.NewReplacer("addr", "address")

// suggestField returns the field name is probably a typo of, or "".
func suggestField(name string, fields []string) string {
	var forms []string
	field := map[string]string{}
	for _, f := range fields {
		forms = append(forms, f)
		field[f] = f
		if long := spelledOut.Replace(f); long != f {
			forms = append(forms, long)
			field[long] = f
		}
	}
	return field[Closest(name, forms)]
}

// unknownFields walks a decoded YAML document beside the Go type it decodes
// into and returns every mapping key that type has no field for. It notes
// in fieldAt the field whose value starts on each line, for type errors.
func unknownFields(n *yaml.Node, t reflect.Type, path string, fieldAt map[int]string) []unknownField {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		return unknownFields(n.Content[0], t, path, fieldAt)
	}
	if n.Kind == yaml.SequenceNode && t.Kind() == reflect.Slice { // a list of sections (federation.issuers)
		var out []unknownField
		for i, item := range n.Content {
			out = append(out, unknownFields(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), fieldAt)...)
		}
		return out
	}
	if n.Kind != yaml.MappingNode || t.Kind() != reflect.Struct {
		return nil // a type mismatch, which the decoder reports
	}
	fields := map[string]reflect.Type{}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fields[name] = f.Type
		names = append(names, name)
	}
	var out []unknownField
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		ft, ok := fields[k.Value]
		if !ok {
			out = append(out, unknownField{line: k.Line, parent: path, name: k.Value, siblings: names})
			continue
		}
		sub := k.Value
		if path != "" {
			sub = path + "." + k.Value
		}
		fieldAt[v.Line] = sub
		out = append(out, unknownFields(v, ft, sub, fieldAt)...)
	}
	return out
}

// typeError rewrites one of yaml.v3's type errors ("line 2: cannot
// unmarshal !!str `many` into int") in configuration words, naming the field.
func typeError(msg string, fieldAt map[int]string) string {
	m := typeErrorRE.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	line, _ := strconv.Atoi(m[1])
	value := m[3]
	if value == "" {
		value = map[string]string{"!!seq": "a list", "!!map": "a section"}[m[2]]
	}
	if value == "" {
		value = "this value"
	}
	want := map[string]string{"int": "a number", "bool": "true or false", "string": "a single value",
		"[]string": "a list, such as [a, b]"}[m[4]]
	if want == "" {
		want = "a section of fields"
	}
	field := fieldAt[line]
	if field == "" {
		return fmt.Sprintf("line %d: %s is not %s", line, value, want)
	}
	return fmt.Sprintf("line %d: %s: %s is not %s", line, field, value, want)
}

var typeErrorRE = regexp.MustCompile("^line (\\d+): cannot unmarshal (!!\\w+)(?: (`[^`]*`))? into (\\S+)$")
