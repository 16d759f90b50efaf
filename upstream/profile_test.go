package upstream

import (
	"slices"
	"testing"
)

// TestProfile: only declared fields are taken from the provider's claims;
// roles keep valid scope tokens once each and never a signet:* role;
// email_verified is the provider's.
func TestProfile(t *testing.T) {
	payload := []byte(`{"sub":"u1","email":"carol@corp.example","email_verified":false,"name":"Carol","groups":["staff","signet:admin","a b","staff","ops"],"dept":"eng"}`)
	all := &Provider{Claims: map[string]string{FieldEmail: "email", FieldName: "name", FieldRoles: "groups"}}
	m := profile(all, payload)
	if m.create.Email != "carol@corp.example" || m.create.EmailVerified || m.create.Name != "Carol" || !slices.Equal(m.create.Roles, []string{"staff", "ops"}) {
		t.Fatalf("all declared: %+v", m.create)
	}
	if m.patch.Email == nil || m.patch.Name == nil || m.patch.Roles == nil {
		t.Fatalf("all declared: patch %+v", m.patch)
	}
	one := profile(&Provider{Claims: map[string]string{FieldRoles: "dept"}}, payload)
	if one.create.Email != "" || one.create.Name != "" || !slices.Equal(one.create.Roles, []string{"eng"}) || one.patch.Email != nil || one.patch.Name != nil {
		t.Fatalf("only roles declared (a string claim): %+v %+v", one.create, one.patch)
	}
	none := profile(&Provider{}, payload)
	if none.create.Email != "" || none.create.Roles != nil || none.patch.Roles != nil {
		t.Fatalf("nothing declared: %+v", none.create)
	}
	bad := profile(all, []byte(`{"email":"not an address","name":"two\nlines","groups":"signet:admin"}`))
	if bad.create.Email != "" || bad.create.Name != "" || len(bad.create.Roles) != 0 {
		t.Fatalf("invalid values: %+v", bad.create)
	}
}
