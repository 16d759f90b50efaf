package jwks

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"testing"
)

// refMembers is the reference for topLevelMembers: encoding/json's
// tokenizer, which the verifier used before it scanned members itself. It
// returns the member names and values decoded, or ok false for anything
// that is not one JSON object with unique member names.
func refMembers(data []byte) (map[string]any, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	out := map[string]any{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, false
		}
		name := t.(string)
		if _, dup := out[name]; dup {
			return nil, false
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		out[name] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, false
	}
	return out, true
}

// FuzzParseClaims: the member scanner accepts exactly the objects the
// json tokenizer accepts (duplicates, also spelled with escapes, refused),
// every registered claim it fills equals the tokenizer's value, and Get
// sees every member.
func FuzzParseClaims(f *testing.F) {
	for _, s := range []string{
		`{"iss":"a","sub":"b","aud":["x","y"],"exp":1e9,"iat":1,"nbf":2.5,"jti":"j","client_id":"c","scope":"r w"}`,
		`{"iss":"a","iss":"b"}`, `{"iss":"a","\u0069ss":"b"}`, `{"a\"b":1,"a\"b":2}`, `{"aud":"x"} x`, `[1]`, `"s"`,
		` { "n" : { "iss" : [1, {"}": "]"}] } , "iss" : "q\"\\" } `, `{"sub":"\u00e9\ud83d\ude00"}`, `{"exp":null}`,
		`{"aud":[null]}`, "{\"a\xff\":1,\"a\xfe\":2}", "{\"a\xff\":1,\"a\\ufffd\":2}", `{"x":1,}`, `{"sub":"caf` + "\xff" + `"}`, `{}`, `{"exp":-0}`, `{"exp":1E400}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		want, ok := refMembers(data)
		c, _, err := parseClaims(data)
		var members []member
		members, merr := topLevelMembers(data, nil)
		if ok != (merr == nil) {
			t.Fatalf("%q: reference ok=%v, members err=%v", data, ok, merr)
		}
		if !ok {
			if err == nil {
				t.Fatalf("%q: parseClaims accepted what the reference refuses", data)
			}
			return
		}
		if len(members) != len(want) {
			t.Fatalf("%q: %d members, reference %d", data, len(members), len(want))
		}
		if err != nil {
			return // a registered claim of the wrong type: checked by the table tests
		}
		for name, dst := range map[string]string{"iss": c.Issuer, "sub": c.Subject, "jti": c.JWTID, "client_id": c.ClientID, "scope": c.Scope} {
			if v, present := want[name]; present && v != dst {
				t.Fatalf("%q: %s = %q, reference %q", data, name, dst, v)
			}
		}
		if !reflect.DeepEqual(c.Raw(), want) {
			t.Fatalf("%q: Raw = %v, reference %v", data, c.Raw(), want)
		}
	})
}
